package rollout

// Step is a part of a rollout that runs a set of hosts together.
type Step struct {
	// Kind: StepPrepare (dry-activate before the approval), StepApply
	// (a wave) or StepRollback.
	Kind StepKind
	// Wave counts the apply steps from 1; the canary is wave 1 when set.
	Wave int
	// Canary: this wave is the canary.
	Canary bool
	// Hosts in the step, by name.
	Hosts []string
}

// StepKind says what a Step does.
type StepKind int

// Kinds of Step.
const (
	StepPrepare StepKind = iota + 1
	StepApply
	StepRollback
)

// Note is something the controller itself has to say about a host (an
// upload, a lost stream, a confirm retried), as opposed to the agent's
// events.
type Note struct {
	Text string
	// Quiet notes go to the log; a live display shows them only as the
	// host's latest line.
	Quiet bool
	// OnceAccepted: show it only when the agent's first event arrives (a
	// refused request then shows the refusal alone); log it at once.
	OnceAccepted bool
	// Phase, if set, is what a live display shows the host doing.
	Phase string
}

// Observer is told what happens, as it happens. Calls for different hosts
// come from different goroutines; calls for one host are serialized.
type Observer interface {
	// StepStarted: hosts are about to run a step.
	StepStarted(s Step)
	// Event: an agent event of host's deployment (shown once: events a
	// reattached stream replays are filtered out before).
	Event(host string, ev Event)
	// Note: a line from the controller about host.
	Note(host string, n Note)
	// StepFinished: the step's hosts have their reports.
	StepFinished(s Step, reports []*HostReport)
}

// Approver decides whether the dry-activated hosts switch.
type Approver interface {
	// Approve shows the ready hosts' summaries and returns whether to go
	// on; the reports of hosts that did not get ready are in failed.
	Approve(ready, failed []*HostReport) (bool, error)
}

// ApproverFunc adapts a function to Approver.
type ApproverFunc func(ready, failed []*HostReport) (bool, error)

// Approve implements Approver.
func (f ApproverFunc) Approve(ready, failed []*HostReport) (bool, error) { return f(ready, failed) }

// NopObserver ignores everything.
type NopObserver struct{}

func (NopObserver) StepStarted(Step)                 {}
func (NopObserver) Event(string, Event)              {}
func (NopObserver) Note(string, Note)                {}
func (NopObserver) StepFinished(Step, []*HostReport) {}
