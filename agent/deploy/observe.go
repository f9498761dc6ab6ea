package deploy

import (
	"time"

	"github.com/pantheros/panther/agent/journal"
)

// Final is a deployment's final result as the engine's observers see it:
// the agent's metrics and result hooks are built on it, outside the engine.
type Final struct {
	ID          string
	Host        string
	Action      Action
	RequestedBy string
	KeyID       string
	Result      Result
	Started     time.Time
	Finished    time.Time
	// ConfirmLatency is, for a confirmed switch, how long the new system
	// waited between becoming healthy and the controller's confirmation.
	ConfirmLatency time.Duration
	// RebootRequired says the new system is not fully active until the
	// host reboots: switch-to-configuration exited 100, or the deployment
	// only set the boot default.
	RebootRequired bool
}

// observeFinal hands rec's final result to the OnResult observer, if any.
// The observer runs synchronously and must not block (see Deps.OnResult).
func (e *Engine) observeFinal(rec *journal.Record, res *Result) {
	if e.onResult == nil || res == nil {
		return
	}
	f := Final{
		ID: rec.ID, Host: rec.Host, Action: Action(rec.Action), RequestedBy: rec.RequestedBy, KeyID: rec.KeyID,
		Result: *res, Started: rec.Started, Finished: e.now(),
	}
	f.Result.RecoveryCommands = append([]string(nil), res.RecoveryCommands...)
	if rec.State == journal.StateConfirmed && !rec.Deadline.IsZero() && rec.ConfirmTimeout > 0 {
		if lat := f.Finished.Sub(rec.Deadline.Add(-rec.ConfirmTimeout)); lat >= 0 {
			f.ConfirmLatency = lat
		}
	}
	switch rec.State {
	case journal.StateBootScheduled, journal.StateRebootRequired:
		f.RebootRequired = true
	case journal.StateConfirmed:
		// Activated, but its kernel, initrd or modules differ from the
		// booted system's.
		f.RebootRequired = len(rec.RebootRequired) > 0
	}
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("result observer panicked", "deployment", rec.ID, "panic", p)
		}
	}()
	e.onResult(f)
}
