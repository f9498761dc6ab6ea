package client

import (
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/controller/rollout"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Conversions between the wire types and the controller's domain types, in
// one place: nothing above this package sees generated code.

var actions = map[rollout.Action]agentv1.Action{
	rollout.ActionBuild:       agentv1.Action_ACTION_BUILD,
	rollout.ActionDryActivate: agentv1.Action_ACTION_DRY_ACTIVATE,
	rollout.ActionSwitch:      agentv1.Action_ACTION_SWITCH,
	rollout.ActionBoot:        agentv1.Action_ACTION_BOOT,
	rollout.ActionRollback:    agentv1.Action_ACTION_ROLLBACK,
}

// IntentToProto is the wire form of in for host (unsigned).
func IntentToProto(host string, in rollout.Intent) *agentv1.Intent {
	out := &agentv1.Intent{
		Host: host, Action: actions[in.Action], DeploymentId: in.DeploymentID,
		SourceDigest: in.Source.Digest, SourceSubdir: in.Source.Subdir, FlakeAttr: in.FlakeAttr,
		ExpectedStorePath: in.ExpectedStorePath, FailOnWarnings: in.FailOnWarnings,
		InstallBootloader: in.InstallBootloader, Force: in.Force, Generation: in.Generation,
		RolloutId: in.RolloutID, BuildPeers: in.BuildPeers, PushTo: in.PushTo,
	}
	if len(in.CriticalUnits) > 0 {
		out.ExtraCriticalUnits = append([]string(nil), in.CriticalUnits...)
	}
	if in.ConfirmTimeout > 0 {
		out.ConfirmTimeout = durationpb.New(in.ConfirmTimeout)
	}
	if in.AwaitApproval {
		AwaitApproval(out, in.ApprovalTimeout)
	}
	return out
}

// PhaseFromProto is the domain phase of p.
func PhaseFromProto(p agentv1.Phase) rollout.Phase {
	if p == agentv1.Phase_PHASE_UNSPECIFIED {
		return rollout.PhaseUnknown
	}
	return rollout.Phase(enumWords(p.String(), "PHASE_", "-"))
}

// PhaseToProto is the wire phase of p.
func PhaseToProto(p rollout.Phase) agentv1.Phase {
	if p == rollout.PhaseUnknown {
		return agentv1.Phase_PHASE_UNSPECIFIED
	}
	return agentv1.Phase(agentv1.Phase_value["PHASE_"+enumName(string(p))])
}

// OutcomeFromProto is the domain outcome of o.
func OutcomeFromProto(o agentv1.Outcome) rollout.Outcome {
	if o == agentv1.Outcome_OUTCOME_UNSPECIFIED {
		return rollout.OutcomeUnknown
	}
	return rollout.Outcome(enumWords(o.String(), "OUTCOME_", " "))
}

// OutcomeToProto is the wire outcome of o.
func OutcomeToProto(o rollout.Outcome) agentv1.Outcome {
	if o == rollout.OutcomeUnknown {
		return agentv1.Outcome_OUTCOME_UNSPECIFIED
	}
	return agentv1.Outcome(agentv1.Outcome_value["OUTCOME_"+enumName(string(o))])
}

// ActionName is the words of a wire action ("dry-activate").
func ActionName(a agentv1.Action) string { return enumWords(a.String(), "ACTION_", "-") }

func enumWords(s, prefix, sep string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", sep)
}

func enumName(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", " ", "_").Replace(s))
}

func timeOf(ts interface{ AsTime() time.Time }, valid bool) time.Time {
	if !valid {
		return time.Time{}
	}
	return ts.AsTime()
}

// EventFromProto is the domain event of ev; ok is false for events the
// domain does not know (heartbeats, newer kinds), which callers skip.
func EventFromProto(ev *agentv1.DeployEvent) (rollout.Event, bool) {
	out := rollout.Event{Time: timeOf(ev.GetTime(), ev.GetTime() != nil), DeploymentID: ev.GetDeploymentId()}
	switch e := ev.GetEvent().(type) {
	case *agentv1.DeployEvent_PhaseStarted:
		out.Kind, out.Phase = rollout.EventPhaseStarted, PhaseFromProto(e.PhaseStarted.GetPhase())
	case *agentv1.DeployEvent_PhaseFinished:
		f := e.PhaseFinished
		out.Kind, out.Phase, out.OK, out.Elapsed, out.Error = rollout.EventPhaseFinished, PhaseFromProto(f.GetPhase()), f.GetOk(), f.GetElapsed().AsDuration(), f.GetError()
	case *agentv1.DeployEvent_Log:
		out.Kind, out.Phase, out.Line = rollout.EventLog, PhaseFromProto(e.Log.GetPhase()), e.Log.GetLine()
	case *agentv1.DeployEvent_Warning:
		out.Kind, out.Line = rollout.EventWarning, e.Warning.GetMessage()
	case *agentv1.DeployEvent_Health:
		out.Kind = rollout.EventHealth
		out.Health = &rollout.HealthCheck{Name: e.Health.GetName(), OK: e.Health.GetOk(), Detail: e.Health.GetDetail()}
	case *agentv1.DeployEvent_Summary:
		out.Kind, out.Summary = rollout.EventSummary, SummaryFromProto(e.Summary)
	case *agentv1.DeployEvent_AwaitingConfirmation:
		a := e.AwaitingConfirmation
		out.Kind = rollout.EventAwaiting
		out.Awaiting = &rollout.Awaiting{Deadline: timeOf(a.GetDeadline(), a.GetDeadline() != nil), NewStorePath: a.GetNewStorePath(), NewGeneration: a.GetNewGeneration()}
	case *agentv1.DeployEvent_Result:
		out.Kind, out.Result = rollout.EventResult, ResultFromProto(e.Result)
	case *agentv1.DeployEvent_AwaitingApproval:
		a := e.AwaitingApproval
		out.Kind = rollout.EventAwaitingApproval
		out.Approval = &rollout.AwaitingApproval{Deadline: timeOf(a.GetDeadline(), a.GetDeadline() != nil), NewStorePath: a.GetNewStorePath()}
	default:
		return out, false
	}
	return out, true
}

// SummaryFromProto is the domain summary of s.
func SummaryFromProto(s *agentv1.Summary) *rollout.Summary {
	out := &rollout.Summary{
		CurrentStorePath: s.GetCurrentStorePath(), CurrentGeneration: s.GetCurrentGeneration(),
		CurrentVersion: s.GetCurrentVersion(), NewStorePath: s.GetNewStorePath(), NewVersion: s.GetNewVersion(),
		WouldStop: s.GetWouldStop(), WouldRestart: s.GetWouldRestart(), WouldStart: s.GetWouldStart(),
		WouldReload: s.GetWouldReload(), WouldNotStop: s.GetWouldNotStop(), Warnings: s.GetWarnings(),
		WouldActivate: s.GetWouldActivate(), WouldRestartSystemd: s.GetWouldRestartSystemd(),
		RebootRequired: s.GetRebootRequired(), NotActivatable: s.GetNotActivatable(), StopsAgent: s.GetStopsAgent(),
		CurrentClosureSize: s.GetCurrentClosureSize(), NewClosureSize: s.GetNewClosureSize(),
	}
	for _, c := range s.GetClosureChanges() {
		out.ClosureChanges = append(out.ClosureChanges, rollout.ClosureChange{Name: c.GetName(), OldVersion: c.GetOldVersion(), NewVersion: c.GetNewVersion(), SizeDelta: c.GetSizeDelta(), SizeBytes: c.GetSizeDeltaBytes()})
	}
	return out
}

// SummaryToProto is the wire summary of s (for JSON output in the wire's
// shape, and for tests).
func SummaryToProto(s *rollout.Summary) *agentv1.Summary {
	out := &agentv1.Summary{
		CurrentStorePath: s.CurrentStorePath, CurrentGeneration: s.CurrentGeneration,
		CurrentVersion: s.CurrentVersion, NewStorePath: s.NewStorePath, NewVersion: s.NewVersion,
		WouldStop: s.WouldStop, WouldRestart: s.WouldRestart, WouldStart: s.WouldStart,
		WouldReload: s.WouldReload, WouldNotStop: s.WouldNotStop, Warnings: s.Warnings,
		WouldActivate: s.WouldActivate, WouldRestartSystemd: s.WouldRestartSystemd,
		RebootRequired: s.RebootRequired, NotActivatable: s.NotActivatable, StopsAgent: s.StopsAgent,
		CurrentClosureSize: s.CurrentClosureSize, NewClosureSize: s.NewClosureSize,
	}
	for _, c := range s.ClosureChanges {
		out.ClosureChanges = append(out.ClosureChanges, &agentv1.ClosureChange{Name: c.Name, OldVersion: c.OldVersion, NewVersion: c.NewVersion, SizeDelta: c.SizeDelta, SizeDeltaBytes: c.SizeBytes})
	}
	return out
}

// ResultFromProto is the domain result of r.
func ResultFromProto(r *agentv1.Result) *rollout.Result {
	return &rollout.Result{
		Outcome: OutcomeFromProto(r.GetOutcome()), FailedPhase: PhaseFromProto(r.GetFailedPhase()),
		Message: r.GetMessage(), StorePath: r.GetStorePath(), Generation: r.GetGeneration(),
		SwitchExitCode: r.GetSwitchExitCode(), RecoveryCommands: r.GetRecoveryCommands(), LogPath: r.GetLogPath(),
		RebootRequired: r.GetRebootRequired(), PreviouslyFailedUnits: r.GetPreviouslyFailedUnits(),
	}
}

// ResultToProto is the wire result of r.
func ResultToProto(r *rollout.Result) *agentv1.Result {
	return &agentv1.Result{
		Outcome: OutcomeToProto(r.Outcome), FailedPhase: PhaseToProto(r.FailedPhase),
		Message: r.Message, StorePath: r.StorePath, Generation: r.Generation,
		SwitchExitCode: r.SwitchExitCode, RecoveryCommands: r.RecoveryCommands, LogPath: r.LogPath,
		RebootRequired: r.RebootRequired, PreviouslyFailedUnits: r.PreviouslyFailedUnits,
	}
}

// EventToProto is the wire event of ev.
func EventToProto(ev rollout.Event) *agentv1.DeployEvent {
	out := &agentv1.DeployEvent{DeploymentId: ev.DeploymentID}
	if !ev.Time.IsZero() {
		out.Time = timestamppb.New(ev.Time)
	}
	switch ev.Kind {
	case rollout.EventPhaseStarted:
		out.Event = &agentv1.DeployEvent_PhaseStarted{PhaseStarted: &agentv1.PhaseStarted{Phase: PhaseToProto(ev.Phase)}}
	case rollout.EventPhaseFinished:
		out.Event = &agentv1.DeployEvent_PhaseFinished{PhaseFinished: &agentv1.PhaseFinished{Phase: PhaseToProto(ev.Phase), Ok: ev.OK, Elapsed: durationpb.New(ev.Elapsed), Error: ev.Error}}
	case rollout.EventLog:
		out.Event = &agentv1.DeployEvent_Log{Log: &agentv1.LogLine{Phase: PhaseToProto(ev.Phase), Line: ev.Line}}
	case rollout.EventWarning:
		out.Event = &agentv1.DeployEvent_Warning{Warning: &agentv1.Warning{Message: ev.Line}}
	case rollout.EventHealth:
		out.Event = &agentv1.DeployEvent_Health{Health: &agentv1.HealthResult{Name: ev.Health.Name, Ok: ev.Health.OK, Detail: ev.Health.Detail}}
	case rollout.EventSummary:
		out.Event = &agentv1.DeployEvent_Summary{Summary: SummaryToProto(ev.Summary)}
	case rollout.EventAwaiting:
		a := &agentv1.AwaitingConfirmation{NewStorePath: ev.Awaiting.NewStorePath, NewGeneration: ev.Awaiting.NewGeneration}
		if !ev.Awaiting.Deadline.IsZero() {
			a.Deadline = timestamppb.New(ev.Awaiting.Deadline)
		}
		out.Event = &agentv1.DeployEvent_AwaitingConfirmation{AwaitingConfirmation: a}
	case rollout.EventResult:
		out.Event = &agentv1.DeployEvent_Result{Result: ResultToProto(ev.Result)}
	case rollout.EventAwaitingApproval:
		a := &agentv1.AwaitingApproval{NewStorePath: ev.Approval.NewStorePath}
		if !ev.Approval.Deadline.IsZero() {
			a.Deadline = timestamppb.New(ev.Approval.Deadline)
		}
		out.Event = &agentv1.DeployEvent_AwaitingApproval{AwaitingApproval: a}
	}
	return out
}

// EventJSON is ev as one JSON object in the agent API's JSON mapping (the
// shape `pantherctl --json` has always printed).
func EventJSON(ev rollout.Event) []byte {
	b, _ := protojson.Marshal(EventToProto(ev))
	return b
}
