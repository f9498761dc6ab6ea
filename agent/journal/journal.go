// Package journal persists the agent's deployment records and logs in its
// state directory. A record is written (and fsynced, file and directory)
// before the system is touched, so that whatever happens next — a crash, the
// agent restarted by its own switch, a reboot — the agent knows on start what
// it was doing, what to restore and by when it must be confirmed.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"
)

// State is where a deployment stands.
type State string

// States. The final ones never change again.
const (
	StateRunning       State = "running"        // validating, building, dry-activating
	StateSwitching     State = "switching"      // the switch unit may be running
	StateAwaiting      State = "awaiting"       // switched; waiting for confirmation
	StateRollingBack   State = "rolling-back"   // the previous system is being restored
	StateBuilt         State = "built"          // final: build-only
	StateDryActivated  State = "dry-activated"  // final: dry-run
	StateBootScheduled State = "boot-scheduled" // final: boot default set
	// StateRebootRequired: a switch that could not activate the new system
	// (switch-to-configuration exited 100, or its inhibitors refused) made
	// it the boot default; it runs after a reboot. Final.
	StateRebootRequired State = "reboot-required"
	StateConfirmed      State = "confirmed"   // final
	StateRolledBack     State = "rolled-back" // final
	StateFailed         State = "failed"      // final: failed before changing anything
	StateManual         State = "manual"      // final: rollback failed, a person must act
	// StateNotApproved: the deployment awaited approval after its
	// dry-activate and was declined, not approved in time, or the agent
	// restarted while it waited. Final; nothing was changed.
	StateNotApproved State = "not-approved"
)

// Failed reports whether a deployment that ended in s did not keep the
// system it switched to: a generation it created is a failed one.
func (s State) Failed() bool {
	switch s {
	case StateRolledBack, StateManual, StateFailed:
		return true
	}
	return false
}

// Final reports whether s never changes again.
func (s State) Final() bool {
	switch s {
	case StateRunning, StateSwitching, StateAwaiting, StateRollingBack:
		return false
	}
	return true
}

// Record is one deployment as the agent remembers it.
type Record struct {
	ID           string `json:"id"`
	Action       string `json:"action"`
	Host         string `json:"host"`
	FlakeAttr    string `json:"flakeAttr,omitempty"`
	SourceDigest string `json:"sourceDigest,omitempty"`
	RequestedBy  string `json:"requestedBy,omitempty"`
	KeyID        string `json:"keyId,omitempty"`
	// SourceRev is the git revision of the controller's checkout the
	// source was packed from ("" = unknown); SourceDirty: it had
	// uncommitted changes.
	SourceRev   string `json:"sourceRev,omitempty"`
	SourceDirty bool   `json:"sourceDirty,omitempty"`
	// Inputs are the store paths of the locked flake inputs the controller
	// shipped; FetchInputs: none were, the agent's nix fetched them.
	Inputs      []string `json:"inputs,omitempty"`
	FetchInputs bool     `json:"fetchInputs,omitempty"`
	// SubstitutedFrom names the build peer the new system was substituted
	// from over the fleet cache ("" = built here, or no fleet cache).
	SubstitutedFrom string `json:"substitutedFrom,omitempty"`

	State  State  `json:"state"`
	Phase  string `json:"phase,omitempty"`  // current phase, or where it failed
	Reason string `json:"reason,omitempty"` // one human line: why it failed or rolled back

	PreviousPath       string `json:"previousPath,omitempty"`
	PreviousGeneration int64  `json:"previousGeneration,omitempty"`
	NewPath            string `json:"newPath,omitempty"`
	NewGeneration      int64  `json:"newGeneration,omitempty"`
	// PreviousProfilePath and NewProfilePath are the toplevels the
	// profile holds for the previous and the new system when those are
	// specialisations (<toplevel>/specialisation/<name>): the profile only
	// ever gets a base system. Empty when the system is a base system.
	PreviousProfilePath string `json:"previousProfilePath,omitempty"`
	NewProfilePath      string `json:"newProfilePath,omitempty"`
	// PreviousSpecialisation is the specialisation the host ran before the
	// switch; Specialisation the one the switch activates ("" = the base
	// system).
	PreviousSpecialisation string `json:"previousSpecialisation,omitempty"`
	Specialisation         string `json:"specialisation,omitempty"`
	// RollbackGeneration is the generation the rollback created, if any.
	RollbackGeneration int64 `json:"rollbackGeneration,omitempty"`
	// ProfileError says why the rollback could not set the system profile
	// back to the previous system (it switched to it all the same).
	ProfileError string `json:"profileError,omitempty"`

	SwitchMode     string        `json:"switchMode,omitempty"` // switch or boot
	SwitchUnit     string        `json:"switchUnit,omitempty"`
	SwitchExitCode *int          `json:"switchExitCode,omitempty"`
	ConfirmTimeout time.Duration `json:"confirmTimeout,omitempty"`
	Deadline       time.Time     `json:"deadline,omitzero"`
	// BootToken identifies the boot the switch happened in; a different
	// token at agent start means the host rebooted.
	BootToken string `json:"bootToken,omitempty"`
	// InstallBootloader: the switch units run with NIXOS_INSTALL_BOOTLOADER=1.
	InstallBootloader bool `json:"installBootloader,omitempty"`
	// NewAgent is set when the switch changed the agent's own unit: the
	// deployment awaits the new agent, which alone may confirm it.
	NewAgent *AgentHandover `json:"newAgent,omitempty"`

	// BaselineFailed are the units systemd reported failed before the
	// switch; the health check judges failures against them, also after an
	// agent restart.
	BaselineFailed []string `json:"baselineFailed,omitempty"`
	// PreviouslyFailed are baseline units still failed after the switch.
	PreviouslyFailed []string `json:"previouslyFailed,omitempty"`
	// NotActivated says why a switch only set the boot default.
	NotActivated string `json:"notActivated,omitempty"`
	// RebootRequired lists what needs a reboot to take effect.
	RebootRequired []string `json:"rebootRequired,omitempty"`
	// Interrupted says that a shutdown or reboot of the host interrupted the
	// deployment and in which phase ("interrupted by reboot during
	// health"). The agent did nothing destructive then; after the boot it
	// decides from the system that runs.
	Interrupted string `json:"interrupted,omitempty"`

	// Approval (agent/deploy/approve.go). AwaitApproval: the request asked
	// the deployment to stop after dry-activate until approved;
	// ApprovalDeadline is when it stops waiting (set while it waits, in
	// phase "approve"); ApprovedBy is who approved it.
	AwaitApproval    bool      `json:"awaitApproval,omitempty"`
	ApprovalDeadline time.Time `json:"approvalDeadline,omitzero"`
	ApprovedBy       string    `json:"approvedBy,omitempty"`

	// Test-then-boot (see agent/deploy/testboot.go). ProfileDeferred: the
	// live switch ran switch-to-configuration test and left the system
	// profile and the boot default on the previous system until the
	// confirm; a record without it was written by an agent that moved the
	// profile before the switch. BootPending: the deployment is confirmed
	// but the new system is not yet the profile and boot default (the
	// agent retries at its next start); BootError says why the last try
	// failed.
	ProfileDeferred bool   `json:"profileDeferred,omitempty"`
	BootPending     bool   `json:"bootPending,omitempty"`
	BootError       string `json:"bootError,omitempty"`
	// DeadmanUnit is the independent dead-man armed for the window: the
	// transient <DeadmanUnit>.timer starts <DeadmanUnit>.service (the
	// previous system's switch-to-configuration switch) at the deadline,
	// without the agent. RolledBackBy says who ran the rollback: "agent",
	// "deadman" (the timer, the agent being down, stuck or late) or
	// "reboot" (the host booted its boot default, the previous system).
	DeadmanUnit  string `json:"deadmanUnit,omitempty"`
	RolledBackBy string `json:"rolledBackBy,omitempty"`

	CriticalUnits    []string  `json:"criticalUnits,omitempty"`
	RecoveryCommands []string  `json:"recoveryCommands,omitempty"`
	Started          time.Time `json:"started"`
	Updated          time.Time `json:"updated"`
	Finished         time.Time `json:"finished,omitzero"`
}

// AgentHandover is a deployment's wait for the new system's agent: the
// agent that switched asked systemd to restart its unit into the new
// package and config, and only an agent running ExecStart may confirm.
type AgentHandover struct {
	// ExecStart is the new agent's command line, from the new system's
	// agent unit.
	ExecStart []string `json:"execStart"`
	// HandedOverBy is the instance (a random token of each agent process)
	// of the agent that asked for the restart: it never confirms.
	HandedOverBy string `json:"handedOverBy"`
	// Requested is when the restart was asked for.
	Requested time.Time `json:"requested"`
	// ResumedBy is the instance of the agent that resumed the deployment
	// after the restart ("" until one did).
	ResumedBy string `json:"resumedBy,omitempty"`
}

// PreviousProfile is the toplevel the profile held for the previous system.
func (r *Record) PreviousProfile() string {
	if r.PreviousProfilePath != "" {
		return r.PreviousProfilePath
	}
	return r.PreviousPath
}

// NewProfile is the toplevel the deployment put into the profile.
func (r *Record) NewProfile() string {
	if r.NewProfilePath != "" {
		return r.NewProfilePath
	}
	return r.NewPath
}

// Errors.
var (
	ErrNotFound  = errors.New("deployment not found")
	ErrBadID     = errors.New("invalid deployment id")
	ErrDuplicate = errors.New("deployment id already used")
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$`)

// ValidID reports whether id is acceptable as a deployment id (it names a directory).
func ValidID(id string) bool { return idRE.MatchString(id) }

// Journal stores records under <dir>/deployments/<id>/{record.json,log}.
type Journal struct {
	dir string
	now func() time.Time
	mu  sync.Mutex
}

// Open opens (creating) the journal under stateDir.
func Open(stateDir string) (*Journal, error) {
	dir := filepath.Join(stateDir, "deployments")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &Journal{dir: dir, now: time.Now}, nil
}

func (j *Journal) recordDir(id string) string { return filepath.Join(j.dir, id) }

// LogPath is where the deployment's full log lives.
func (j *Journal) LogPath(id string) string { return filepath.Join(j.recordDir(id), "log") }

// Dir returns the deployment's directory (for files that belong to it).
func (j *Journal) Dir(id string) string { return j.recordDir(id) }

// Create writes a new record; the id must be unused.
func (j *Journal) Create(r *Record) error {
	if !ValidID(r.ID) {
		return fmt.Errorf("%w: %q", ErrBadID, r.ID)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.Mkdir(j.recordDir(r.ID), 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrDuplicate, r.ID)
		}
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	if r.Started.IsZero() {
		r.Started = j.now()
	}
	return j.write(r)
}

// Update rewrites the record durably.
func (j *Journal) Update(r *Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.write(r)
}

func (j *Journal) write(r *Record) error {
	r.Updated = j.now()
	if r.State.Final() && r.Finished.IsZero() {
		r.Finished = r.Updated
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	d := j.recordDir(r.ID)
	tmp := filepath.Join(d, "record.json.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("journal: write record: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: sync record: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(d, "record.json")); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(d)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// Get reads one record.
func (j *Journal) Get(id string) (*Record, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	b, err := os.ReadFile(filepath.Join(j.recordDir(id), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", id, err)
	}
	if r.ID != id {
		// A damaged or misplaced record must not be resumed, updated or
		// shown under another deployment's id.
		return nil, fmt.Errorf("journal: record %s names deployment %q", id, r.ID)
	}
	return &r, nil
}

// List returns every readable record, newest first.
func (j *Journal) List() ([]*Record, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []*Record
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		r, err := j.Get(e.Name())
		if err != nil {
			continue // a directory without a record: created, then crashed before the first write
		}
		out = append(out, r)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Started.Equal(out[b].Started) {
			return out[a].Started.After(out[b].Started)
		}
		return out[a].ID > out[b].ID
	})
	return out, nil
}

// Unfinished returns the records that are not in a final state, oldest first.
func (j *Journal) Unfinished() ([]*Record, error) {
	all, err := j.List()
	if err != nil {
		return nil, err
	}
	var out []*Record
	for i := len(all) - 1; i >= 0; i-- {
		if !all[i].State.Final() {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// OpenLog opens the deployment's log for appending.
func (j *Journal) OpenLog(id string) (*os.File, error) {
	f, err := os.OpenFile(j.LogPath(id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: open log: %w", err)
	}
	return f, nil
}

// ReadLog opens the deployment's log for reading.
func (j *Journal) ReadLog(id string) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBadID, id)
	}
	f, err := os.Open(j.LogPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return f, nil
}

// Prune removes the oldest finished deployments beyond keep. Unfinished ones
// are never removed.
func (j *Journal) Prune(keep int) error {
	if keep <= 0 {
		return nil
	}
	all, err := j.List()
	if err != nil {
		return err
	}
	kept := 0
	for _, r := range all {
		if !r.State.Final() {
			continue
		}
		kept++
		if kept > keep {
			if err := os.RemoveAll(j.recordDir(r.ID)); err != nil {
				return fmt.Errorf("journal: prune %s: %w", r.ID, err)
			}
		}
	}
	return nil
}
