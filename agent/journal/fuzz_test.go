package journal

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecordFile puts fuzzed bytes where a deployment's record.json lives:
// Get, List and Unfinished must never panic, and a record they return must
// carry the id of its directory (a record cannot claim another's id).
func FuzzRecordFile(f *testing.F) {
	f.Add([]byte(`{"id":"d1","action":"switch","host":"alpha","state":"awaiting","started":"2026-11-25T12:00:00Z","updated":"2026-11-25T12:00:00Z"}`))
	f.Add([]byte(`{"id":"other","state":"running"}`))
	f.Add([]byte(`{"id":"d1","state":"","switchExitCode":-1,"confirmTimeout":-5}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Create(&Record{ID: "d0", Action: "build", Host: "alpha", State: StateBuilt}); err != nil {
			t.Fatal(err)
		}
		dir := j.Dir("d1")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "record.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if r, err := j.Get("d1"); err == nil && r.ID != "d1" {
			t.Fatalf("Get(d1) returned a record for %q", r.ID)
		}
		recs, _ := j.List()
		for _, r := range recs {
			if r == nil {
				t.Fatal("List returned a nil record")
			}
		}
		unfinished, _ := j.Unfinished()
		for _, r := range unfinished {
			if r.State.Final() {
				t.Fatalf("Unfinished returned %q in final state %q", r.ID, r.State)
			}
		}
	})
}
