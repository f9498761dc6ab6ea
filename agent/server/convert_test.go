package server

import (
	"context"
	"slices"
	"testing"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// The judging of switch-to-configuration reaches the controller: the
// summary's dry-activate vocabulary and reboot facts, the reboot-required
// outcome, the result's reboot and previously failed units, and force.
func TestConvertSwitchContract(t *testing.T) {
	t.Parallel()
	ev := eventToProto(deploy.Event{Kind: deploy.EventSummary, Summary: &deploy.Summary{
		NewPath: "/nix/store/x", WouldNotStop: []string{"keep.service"}, WouldActivate: true, WouldRestartSystemd: true,
		RebootRequired: []string{"kernel"}, NotActivatable: "inhibited", StopsAgent: "would stop panther-agent.service",
	}})
	s := ev.GetSummary()
	if !slices.Equal(s.GetWouldNotStop(), []string{"keep.service"}) || !s.GetWouldActivate() || !s.GetWouldRestartSystemd() ||
		!slices.Equal(s.GetRebootRequired(), []string{"kernel"}) || s.GetNotActivatable() != "inhibited" || s.GetStopsAgent() == "" {
		t.Errorf("summary = %v", s)
	}
	r := resultToProto(&deploy.Result{Outcome: journal.StateRebootRequired, RebootRequired: []string{"system"}, PreviouslyFailed: []string{"old.service"}})
	if r.GetOutcome() != agentv1.Outcome_OUTCOME_REBOOT_REQUIRED || !slices.Equal(r.GetRebootRequired(), []string{"system"}) ||
		!slices.Equal(r.GetPreviouslyFailedUnits(), []string{"old.service"}) {
		t.Errorf("result = %v", r)
	}
	req := (&Server{}).request(context.Background(), &agentv1.Intent{Action: agentv1.Action_ACTION_SWITCH, Force: true}, "path:/x", "")
	if !req.Force {
		t.Error("force was lost")
	}
}
