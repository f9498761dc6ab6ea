package server

import (
	"context"
	"testing"
	"time"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// genlessNix has no system profile generations.
type genlessNix struct{ noNix }

func (genlessNix) Generations(context.Context, string) ([]deploy.Generation, error) { return nil, nil }

// A deployment awaiting approval is Status's pending deployment, marked
// awaiting_approval, with the approval's deadline.
func TestStatusReportsAwaitingApproval(t *testing.T) {
	s := reachServer(t, nil)
	e, err := deploy.New(deploy.Options{Host: "alpha"}, deploy.Deps{Nix: genlessNix{}, Activator: noAct{}, Health: noHealth{}, Journal: s.c.Journal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s.c.Engine = e
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.c.Journal.Create(&journal.Record{ID: "d-wait", Action: "switch", Host: "alpha", State: journal.StateRunning,
		Phase: string(deploy.PhaseApprove), ApprovalDeadline: deadline, NewPath: "/nix/store/x-new"}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Status(context.Background(), &agentv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPending()
	if p == nil || p.GetDeploymentId() != "d-wait" || !p.GetAwaitingApproval() ||
		!p.GetDeadline().AsTime().Equal(deadline) || p.GetNewStorePath() != "/nix/store/x-new" {
		t.Fatalf("pending = %v, want d-wait awaiting approval until %v", p, deadline)
	}
}
