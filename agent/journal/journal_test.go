package journal

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

func TestCreateUpdateGet(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{ID: "d1", Action: "switch", Host: "yoga", State: StateRunning, PreviousPath: "/nix/store/a"}
	if err := j.Create(r); err != nil {
		t.Fatal(err)
	}
	if err := j.Create(&Record{ID: "d1"}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate create: %v", err)
	}
	r.State = StateAwaiting
	r.Deadline = time.Now().Add(time.Minute).Truncate(time.Second)
	if err := j.Update(r); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get("d1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateAwaiting || got.PreviousPath != "/nix/store/a" || !got.Deadline.Equal(r.Deadline) {
		t.Errorf("got %+v", got)
	}
	un, _ := j.Unfinished()
	if len(un) != 1 {
		t.Errorf("unfinished = %d, want 1", len(un))
	}
	r.State = StateConfirmed
	j.Update(r)
	got, _ = j.Get("d1")
	if got.Finished.IsZero() {
		t.Error("final record has no finish time")
	}
	if _, err := j.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestBadIDs(t *testing.T) {
	j, _ := Open(t.TempDir())
	for _, id := range []string{"", "../x", "a/b", ".hidden", "x y"} {
		if err := j.Create(&Record{ID: id}); !errors.Is(err, ErrBadID) {
			t.Errorf("Create(%q) = %v, want ErrBadID", id, err)
		}
		if _, err := j.ReadLog(id); !errors.Is(err, ErrBadID) {
			t.Errorf("ReadLog(%q) = %v, want ErrBadID", id, err)
		}
	}
}

func TestLogAndPrune(t *testing.T) {
	j, _ := Open(t.TempDir())
	base := time.Now()
	for i, id := range []string{"a", "b", "c", "d"} {
		r := &Record{ID: id, State: StateConfirmed, Started: base.Add(time.Duration(i) * time.Second)}
		if id == "a" {
			r.State = StateAwaiting // never pruned
		}
		if err := j.Create(r); err != nil {
			t.Fatal(err)
		}
		f, _ := j.OpenLog(id)
		f.WriteString("line of " + id + "\n")
		f.Close()
	}
	if err := j.Prune(2); err != nil {
		t.Fatal(err)
	}
	all, _ := j.List()
	var ids []string
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	if len(ids) != 3 || ids[0] != "d" || ids[1] != "c" || ids[2] != "a" {
		t.Errorf("after prune: %v, want [d c a]", ids)
	}
	rc, err := j.ReadLog("d")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "line of d\n" {
		t.Errorf("log = %q", b)
	}
	if _, err := os.Stat(j.LogPath("b")); !os.IsNotExist(err) {
		t.Error("pruned log still present")
	}
}
