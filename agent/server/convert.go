package server

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

var actionNames = map[agentv1.Action]deploy.Action{
	agentv1.Action_ACTION_BUILD:        deploy.ActionBuild,
	agentv1.Action_ACTION_DRY_ACTIVATE: deploy.ActionDryActivate,
	agentv1.Action_ACTION_SWITCH:       deploy.ActionSwitch,
	agentv1.Action_ACTION_BOOT:         deploy.ActionBoot,
	agentv1.Action_ACTION_ROLLBACK:     deploy.ActionRollback,
}

var phaseToProto = map[deploy.Phase]agentv1.Phase{
	deploy.PhaseValidate:    agentv1.Phase_PHASE_VALIDATE,
	deploy.PhaseBuild:       agentv1.Phase_PHASE_BUILD,
	deploy.PhaseDryActivate: agentv1.Phase_PHASE_DRY_ACTIVATE,
	deploy.PhaseSwitch:      agentv1.Phase_PHASE_SWITCH,
	deploy.PhaseHealth:      agentv1.Phase_PHASE_HEALTH,
	deploy.PhaseConfirm:     agentv1.Phase_PHASE_CONFIRM,
	deploy.PhaseRollback:    agentv1.Phase_PHASE_ROLLBACK,
	deploy.PhaseApprove:     agentv1.Phase_PHASE_APPROVE,
}

var outcomeToProto = map[journal.State]agentv1.Outcome{
	journal.StateRunning:        agentv1.Outcome_OUTCOME_RUNNING,
	journal.StateSwitching:      agentv1.Outcome_OUTCOME_RUNNING,
	journal.StateRollingBack:    agentv1.Outcome_OUTCOME_RUNNING,
	journal.StateAwaiting:       agentv1.Outcome_OUTCOME_AWAITING_CONFIRMATION,
	journal.StateBuilt:          agentv1.Outcome_OUTCOME_BUILT,
	journal.StateDryActivated:   agentv1.Outcome_OUTCOME_DRY_ACTIVATED,
	journal.StateBootScheduled:  agentv1.Outcome_OUTCOME_BOOT_SCHEDULED,
	journal.StateRebootRequired: agentv1.Outcome_OUTCOME_REBOOT_REQUIRED,
	journal.StateConfirmed:      agentv1.Outcome_OUTCOME_CONFIRMED,
	journal.StateRolledBack:     agentv1.Outcome_OUTCOME_ROLLED_BACK,
	journal.StateFailed:         agentv1.Outcome_OUTCOME_FAILED,
	journal.StateManual:         agentv1.Outcome_OUTCOME_MANUAL_INTERVENTION,
	journal.StateNotApproved:    agentv1.Outcome_OUTCOME_NOT_APPROVED,
}

func eventToProto(ev deploy.Event) *agentv1.DeployEvent {
	pe := &agentv1.DeployEvent{Time: timestamppb.New(ev.Time), DeploymentId: ev.DeploymentID}
	switch ev.Kind {
	case deploy.EventPhaseStarted:
		pe.Event = &agentv1.DeployEvent_PhaseStarted{PhaseStarted: &agentv1.PhaseStarted{Phase: phaseToProto[ev.Phase]}}
	case deploy.EventPhaseFinished:
		pe.Event = &agentv1.DeployEvent_PhaseFinished{PhaseFinished: &agentv1.PhaseFinished{
			Phase: phaseToProto[ev.Phase], Ok: ev.OK, Elapsed: durationpb.New(ev.Elapsed), Error: ev.Err}}
	case deploy.EventLog:
		pe.Event = &agentv1.DeployEvent_Log{Log: &agentv1.LogLine{Phase: phaseToProto[ev.Phase], Line: ev.Line}}
	case deploy.EventWarning:
		pe.Event = &agentv1.DeployEvent_Warning{Warning: &agentv1.Warning{Message: ev.Line}}
	case deploy.EventHealth:
		pe.Event = &agentv1.DeployEvent_Health{Health: &agentv1.HealthResult{Name: ev.Name, Ok: ev.OK, Detail: ev.Detail}}
	case deploy.EventSummary:
		s := ev.Summary
		ps := &agentv1.Summary{
			CurrentStorePath: s.CurrentPath, CurrentGeneration: s.CurrentGeneration, CurrentVersion: s.CurrentVersion,
			NewStorePath: s.NewPath, NewVersion: s.NewVersion,
			WouldStop: s.WouldStop, WouldRestart: s.WouldRestart, WouldStart: s.WouldStart, WouldReload: s.WouldReload,
			Warnings:     s.Warnings,
			WouldNotStop: s.WouldNotStop, WouldActivate: s.WouldActivate, WouldRestartSystemd: s.WouldRestartSystemd,
			RebootRequired: s.RebootRequired, NotActivatable: s.NotActivatable, StopsAgent: s.StopsAgent,
			CurrentClosureSize: s.CurrentClosureSize, NewClosureSize: s.NewClosureSize,
		}
		for _, c := range s.Changes {
			ps.ClosureChanges = append(ps.ClosureChanges, &agentv1.ClosureChange{Name: c.Name, OldVersion: c.OldVersion, NewVersion: c.NewVersion, SizeDelta: c.SizeDelta, SizeDeltaBytes: c.SizeBytes})
		}
		pe.Event = &agentv1.DeployEvent_Summary{Summary: ps}
	case deploy.EventAwaiting:
		a := ev.Awaiting
		pe.Event = &agentv1.DeployEvent_AwaitingConfirmation{AwaitingConfirmation: &agentv1.AwaitingConfirmation{
			Deadline: timestamppb.New(a.Deadline), NewStorePath: a.NewPath, NewGeneration: a.NewGeneration}}
	case deploy.EventAwaitingApproval:
		pe.Event = &agentv1.DeployEvent_AwaitingApproval{AwaitingApproval: &agentv1.AwaitingApproval{
			Deadline: timestamppb.New(ev.Approval.Deadline), NewStorePath: ev.Approval.NewPath}}
	case deploy.EventResult:
		pe.Event = &agentv1.DeployEvent_Result{Result: resultToProto(ev.Result)}
	}
	return pe
}

func resultToProto(r *deploy.Result) *agentv1.Result {
	return &agentv1.Result{
		Outcome: outcomeToProto[r.Outcome], FailedPhase: phaseToProto[r.FailedPhase], Message: r.Message,
		StorePath: r.StorePath, Generation: r.Generation, SwitchExitCode: int32(r.SwitchExitCode),
		RecoveryCommands: r.RecoveryCommands, LogPath: r.LogPath,
		RebootRequired: r.RebootRequired, PreviouslyFailedUnits: r.PreviouslyFailed,
	}
}

func recordToProto(r *journal.Record) *agentv1.DeploymentInfo {
	var action agentv1.Action
	for a, name := range actionNames {
		if string(name) == r.Action {
			action = a
		}
	}
	info := &agentv1.DeploymentInfo{
		DeploymentId: r.ID, Action: action, Outcome: outcomeToProto[r.State], Message: r.Reason,
		StorePath: r.NewPath, PreviousStorePath: r.PreviousPath, Started: timestamppb.New(r.Started),
		RequestedBy: r.RequestedBy, KeyId: r.KeyID, SourceRev: r.SourceRev, SourceDirty: r.SourceDirty,
	}
	if !r.Finished.IsZero() {
		info.Finished = timestamppb.New(r.Finished)
	}
	return info
}
