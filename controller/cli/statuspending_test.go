package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pantheros/panther/controller/client"
)

// A deployment awaiting approval reads as such, with its deadline, in the
// one-host view and in the table; one awaiting confirmation as before.
func TestStatusShowsAwaitingApproval(t *testing.T) {
	deadline := time.Now().Add(5 * time.Minute).Truncate(time.Second)
	approving := &client.Pending{DeploymentID: "d1", Deadline: deadline, NewStorePath: "/nix/store/x", AwaitingApproval: true}

	var out bytes.Buffer
	c := &CLI{io: IO{Stdout: &out}}
	c.printStatus(&client.HostStatus{Host: "alpha", Pending: approving})
	want := "d1 awaiting approval until " + deadline.Local().Format(time.DateTime)
	if !strings.Contains(out.String(), want) {
		t.Errorf("status:\n%s\nwant a pending line with %q", out.String(), want)
	}
	if strings.Contains(out.String(), "confirmation") || strings.Contains(out.String(), "rolls back") {
		t.Errorf("status of a deployment awaiting approval speaks of confirmation:\n%s", out.String())
	}
	if got, want := pendingCell(approving), "d1 awaiting approval until "+deadline.Local().Format(time.TimeOnly); got != want {
		t.Errorf("table cell %q, want %q", got, want)
	}

	confirming := &client.Pending{DeploymentID: "d2", Deadline: deadline}
	out.Reset()
	c.printStatus(&client.HostStatus{Host: "alpha", Pending: confirming})
	if !strings.Contains(out.String(), "d2 awaiting confirmation") {
		t.Errorf("status of a deployment awaiting confirmation:\n%s", out.String())
	}
	if got := pendingCell(confirming); !strings.HasPrefix(got, "d2 (") || !strings.HasSuffix(got, " left)") {
		t.Errorf("table cell %q, want d2 (… left)", got)
	}
}
