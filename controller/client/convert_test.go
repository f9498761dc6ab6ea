package client

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/controller/rollout"
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Every enum value converts to the domain and back unchanged.
func TestEnumsRoundTrip(t *testing.T) {
	for v := range agentv1.Phase_name {
		p := agentv1.Phase(v)
		if got := PhaseToProto(PhaseFromProto(p)); got != p {
			t.Errorf("phase %v -> %q -> %v", p, PhaseFromProto(p), got)
		}
	}
	for v := range agentv1.Outcome_name {
		o := agentv1.Outcome(v)
		if got := OutcomeToProto(OutcomeFromProto(o)); got != o {
			t.Errorf("outcome %v -> %q -> %v", o, OutcomeFromProto(o), got)
		}
	}
	if PhaseFromProto(agentv1.Phase_PHASE_DRY_ACTIVATE) != rollout.PhaseDryActivate || OutcomeFromProto(agentv1.Outcome_OUTCOME_ROLLED_BACK) != rollout.OutcomeRolledBack {
		t.Error("domain names differ from the words pantherctl prints")
	}
}

// Events convert to the domain and back without loss.
func TestEventsRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	evs := []rollout.Event{
		{Kind: rollout.EventPhaseStarted, Phase: rollout.PhaseBuild},
		{Kind: rollout.EventPhaseFinished, Phase: rollout.PhaseSwitch, OK: true, Elapsed: time.Second},
		{Kind: rollout.EventLog, Phase: rollout.PhaseSwitch, Line: "x"},
		{Kind: rollout.EventWarning, Line: "w"},
		{Kind: rollout.EventHealth, Health: &rollout.HealthCheck{Name: "n", OK: true, Detail: "d"}},
		{Kind: rollout.EventSummary, Summary: &rollout.Summary{NewStorePath: "/nix/store/a", ClosureChanges: []rollout.ClosureChange{{Name: "linux", OldVersion: "1", NewVersion: "2", SizeDelta: "+1 KiB", SizeBytes: 1024}}, RebootRequired: []string{"kernel"}, CurrentClosureSize: 5, NewClosureSize: 1029}},
		{Kind: rollout.EventAwaiting, Awaiting: &rollout.Awaiting{Deadline: at, NewGeneration: 3}},
		{Kind: rollout.EventAwaitingApproval, Approval: &rollout.AwaitingApproval{Deadline: at, NewStorePath: "/nix/store/b"}},
		{Kind: rollout.EventResult, Result: &rollout.Result{Outcome: rollout.OutcomeFailed, FailedPhase: rollout.PhaseHealth, Message: "m", RecoveryCommands: []string{"c"}}},
	}
	for _, ev := range evs {
		ev.Time, ev.DeploymentID = at, "id"
		got, ok := EventFromProto(EventToProto(ev))
		if !ok || !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip of %+v = %+v", ev, got)
		}
	}
	if _, ok := EventFromProto(&agentv1.DeployEvent{Event: &agentv1.DeployEvent_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}); ok {
		t.Error("a heartbeat became a domain event")
	}
}

// gRPC statuses become typed errors, tested with errors.Is, never by text.
func TestAgentErrorKinds(t *testing.T) {
	down, _ := status.New(codes.FailedPrecondition, "no control").WithDetails(&errdetails.ErrorInfo{Reason: agentv1.ReasonControlPlaneDown, Domain: agentv1.ErrorDomain})
	tests := []struct {
		name string
		err  error
		want []error
	}{
		{"untrusted key", status.Error(codes.Unauthenticated, "unknown key"), []error{rollout.ErrUntrusted}},
		{"wrong host", status.Error(codes.PermissionDenied, "wrong host"), []error{rollout.ErrRefused}},
		{"busy", status.Error(codes.FailedPrecondition, "busy"), []error{rollout.ErrPrecondition, rollout.ErrRefused}},
		{"control down", down.Err(), []error{rollout.ErrControlDown, rollout.ErrRefused}},
		{"unreachable", status.Error(codes.Unavailable, "connection refused"), []error{rollout.ErrUnreachable}},
		{"not a peer", status.Error(codes.Unavailable, fmt.Sprintf("dial: %v: no peer", tailnet.ErrUnknownPeer)), []error{rollout.ErrNotPeer}},
		{"interrupted", status.Error(codes.Internal, "boom"), []error{rollout.ErrInterrupted}},
		{"not found", status.Error(codes.NotFound, "no such"), []error{rollout.ErrNotFound}},
		{"invalid", status.Error(codes.InvalidArgument, "bad"), []error{rollout.ErrInvalid}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := AgentError("alpha", tc.err)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("%v is not %v", err, w)
				}
			}
			var ae *rollout.AgentError
			if !errors.As(err, &ae) || ae.Host != "alpha" {
				t.Errorf("%#v is not an *AgentError of alpha", err)
			}
		})
	}
	if rollout.Retriable(AgentError("a", status.Error(codes.PermissionDenied, "x"))) {
		t.Error("a refusal is retriable")
	}
	if !rollout.Retriable(AgentError("a", status.Error(codes.Unavailable, "x"))) {
		t.Error("an unreachable agent is not retriable")
	}
}
