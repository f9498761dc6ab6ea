package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSnapshotDirTakesTheNixDatabaseOnce: the sandbox's nix database is one
// copy of the host's taken before the first boot, never mixed later with
// files the host changed meanwhile (the overlay would copy each file up at
// its first write, one by one).
func TestSnapshotDirTakesTheNixDatabaseOnce(t *testing.T) {
	src := filepath.Join(t.TempDir(), "nix", "var", "nix", "db")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("db.sqlite", "pages v1")
	write("db.sqlite-wal", "frames v1")
	write("big-lock", "")
	if err := os.Mkdir(filepath.Join(src, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	u := upperLayer{dir: t.TempDir()}
	if err := u.snapshotDir(src); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(u.dir, src, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("db.sqlite") + "|" + read("db.sqlite-wal") + "|" + read("big-lock"); got != "pages v1|frames v1|" {
		t.Errorf("snapshot = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(u.dir, src, "subdir")); err == nil {
		t.Error("a directory was copied: only the database's files belong in the snapshot")
	}
	// The host's nix writes on; the next boot keeps the sandbox's own copy.
	write("db.sqlite-wal", "frames v2")
	if err := u.snapshotDir(src); err != nil {
		t.Fatal(err)
	}
	if got := read("db.sqlite-wal"); got != "frames v1" {
		t.Errorf("after a second boot the snapshot holds %q, want the first copy", got)
	}
	// No nix on the host: nothing to take.
	if err := (upperLayer{dir: t.TempDir()}).snapshotDir(filepath.Join(t.TempDir(), "absent")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}
