package activation

import (
	"context"
	"testing"
	"time"
)

// TestExecRunnerCancelKillsChildren: a cancelled command returns at once
// even when a child of it still holds the output pipe.
func TestExecRunnerCancelKillsChildren(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var lines []string
	_, err := ExecRunner{}.Run(ctx, []string{"/bin/sh", "-c", "echo started; sleep 30; echo done"}, func(l string) { lines = append(lines, l) })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %v after the cancel, want at once (err %v)", took, err)
	}
	if len(lines) != 1 || lines[0] != "started" {
		t.Errorf("lines %q, want just \"started\"", lines)
	}
}
