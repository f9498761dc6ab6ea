package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/lab/fleettest"
	"github.com/pantheros/panther/lab/nixtest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// One evaluation per deploy (issue 12 item 3) and one deployment per host
// with Approve (issue 13 item 2), on real nix, a systemd sandbox and the
// tailnet. Helpers carry an "ap" prefix.
//
// Evaluations are counted with the lab flake's traced variant: every
// evaluation of the host prints nixtest.TraceLine on nix's stderr, and the
// agent writes the stderr of each nix call of a deploy that evaluates the
// flake (the evaluation in validate, the build's -L output) into the
// deployment log. A build that evaluated again would print it in the build
// phase.

// apTraces returns the deployment log's trace lines of host's evaluations.
func apTraces(log, host string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, nixtest.TraceLine+host) {
			out = append(out, l)
		}
	}
	return out
}

// apOneEvaluation checks that deployment id evaluated the flake once, in
// its validate phase, and built and dry-activated once.
func apOneEvaluation(t *testing.T, h *fleettest.Host, id string) string {
	t.Helper()
	log := h.DeploymentLog(t, id)
	traces := apTraces(log, h.Name)
	if len(traces) != 1 || !strings.Contains(traces[0], "[validate]") {
		t.Errorf("%s: want one evaluation, in validate; got %d:\n%s\n--- log\n%s", id, len(traces), strings.Join(traces, "\n"), log)
	}
	for _, p := range []string{"[build] started", "[dry-activate] started"} {
		if n := strings.Count(log, p); n != 1 {
			t.Errorf("%s: %q %d times, want once", id, p, n)
		}
	}
	return log
}

// apNewIDs lists h's deployments that are not in before.
func apNewIDs(t *testing.T, h *fleettest.Host, before []string) []string {
	t.Helper()
	var out []string
	for _, id := range plDeploymentIDs(t, h) {
		if !slices.Contains(before, id) {
			out = append(out, id)
		}
	}
	return out
}

// apPrompted runs pantherctl deploy alpha on a terminal, answers the one
// question with answer, and returns its result, the new deployments and
// when the answer was typed.
func apPrompted(t *testing.T, f *fleettest.Fleet, h *fleettest.Host, answer string, args ...string) (fleettest.Result, []string, time.Time) {
	t.Helper()
	before := plDeploymentIDs(t, h)
	p := ftStartCtl(t, f, true, append([]string{"deploy", h.Name, "--flake", f.Flake}, args...)...)
	p.waitStderr(t, "[y/N]", 2*time.Minute)
	answered := time.Now()
	if _, err := p.tty.WriteString(answer + "\n"); err != nil {
		t.Fatalf("answering pantherctl: %v", err)
	}
	r := p.wait(t, 2*time.Minute)
	return r, apNewIDs(t, h, before), answered
}

// apAwaitApproval sends a signed switch of the uploaded source that awaits
// approval and reads its stream up to AwaitingApproval.
func apAwaitApproval(t *testing.T, conn *client.Conn, s client.Signer, src packed, timeout time.Duration) (string, client.Stream, *agentv1.AwaitingApproval) {
	t.Helper()
	in := &agentv1.Intent{
		Action: agentv1.Action_ACTION_SWITCH, DeploymentId: client.NewDeploymentID(time.Now()),
		SourceDigest: src.Digest, SourceSubdir: src.Subdir, FlakeAttr: "alpha",
	}
	client.AwaitApproval(in, timeout)
	st, err := conn.Deploy(t.Context(), s, in)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	for {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("before awaiting approval: %v", err)
		}
		if r := ev.GetResult(); r != nil {
			t.Fatalf("ended before awaiting approval: %v", r)
		}
		if a := ev.GetAwaitingApproval(); a != nil {
			return in.DeploymentId, st, a
		}
	}
}

// apResult reads st to the deployment's result. The client's stream hides
// heartbeats and ends when they stop for client.StallTimeout: a result
// after a longer wait shows they kept coming.
func apResult(t *testing.T, st client.Stream) *agentv1.Result {
	t.Helper()
	for {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("before the result: %v", err)
		}
		if r := ev.GetResult(); r != nil {
			return r
		}
	}
}

func TestApprove(t *testing.T) {
	f := fleettest.New(t, plFleetOptions())
	alpha := f.Hosts["alpha"]
	salted := func(v string) string { return nixtest.Salted(v, rand.Text()) }

	t.Run("YesEvaluatesOnce", func(t *testing.T) {
		f.SetVariant("alpha", salted(nixtest.Traced))
		d := plDeploy(t, f, alpha, 0, "--yes")
		if len(d.IDs) != 1 {
			t.Fatalf("want one deployment, got %v", d.IDs)
		}
		apOneEvaluation(t, alpha, d.IDs[0])
	})

	t.Run("PromptedIsOneDeployment", func(t *testing.T) {
		f.SetVariant("alpha", salted(nixtest.Traced))
		r, ids, answered := apPrompted(t, f, alpha, "y")
		if r.Code != 0 {
			t.Fatalf("want exit 0, got %s", r)
		}
		if len(ids) != 1 {
			t.Fatalf("a prompted deploy made %d deployments (%v), want one", len(ids), ids)
		}
		rec := alpha.JournalRecord(t, ids[0])
		if rec.Action != "switch" || rec.State != journal.StateConfirmed || !rec.AwaitApproval || rec.ApprovedBy == "" {
			t.Errorf("record: action %s state %s awaitApproval %v approvedBy %q", rec.Action, rec.State, rec.AwaitApproval, rec.ApprovedBy)
		}
		if alpha.CurrentSystem(t) != rec.NewPath {
			t.Errorf("current system %s, want the approved %s", alpha.CurrentSystem(t), rec.NewPath)
		}
		log := apOneEvaluation(t, alpha, ids[0])
		if switched, ok := fleettest.LogTime(log, "[confirm] awaiting confirmation"); ok {
			t.Logf("from the answer to switched: %v", switched.Sub(answered).Round(time.Millisecond))
		}
	})

	signer := client.Signer{Key: f.Key(t)}
	ctl := f.Tailnet.Node(t, "ctl-approve", "tag:panther-controller")
	upload := func(t *testing.T) packed {
		f.SetVariant("alpha", salted(nixtest.Good))
		src := packFlake(t, f.Flake)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := dial(t, ctl, "alpha").Upload(ctx, signer, src.Digest, openFile(t, src.path)); err != nil {
			t.Fatalf("upload: %v", err)
		}
		return src
	}

	t.Run("WrongStorePathRefused", func(t *testing.T) {
		src := upload(t)
		before := plStateOf(t, alpha)
		conn := dial(t, ctl, "alpha")
		id, st, aw := apAwaitApproval(t, conn, signer, src, time.Minute)
		err := conn.Approve(t.Context(), signer, id, before.Current)
		if !errors.Is(err, client.ErrApprovalPathMismatch) || status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("approving %s instead of %s: want FailedPrecondition ErrApprovalPathMismatch, got %v", before.Current, aw.NewStorePath, err)
		}
		if !strings.Contains(err.Error(), aw.NewStorePath) {
			t.Errorf("the refusal does not name the dry-activated path %s: %v", aw.NewStorePath, err)
		}
		if rec := alpha.JournalRecord(t, id); rec.State != journal.StateRunning || rec.Phase != "approve" {
			t.Errorf("after the refusal: %s in %s, want still awaiting approval", rec.State, rec.Phase)
		}
		// The same signed approval, replayed with another nonce, for
		// another deployment: not awaiting approval.
		if err := conn.Approve(t.Context(), signer, "20000101T000000Z-000000", aw.NewStorePath); status.Code(err) != codes.NotFound {
			t.Errorf("approving an unknown deployment: want NotFound, got %v", err)
		}
		res, err := conn.Decline(t.Context(), signer, id)
		if err != nil {
			t.Fatalf("decline: %v", err)
		}
		if res.Outcome != agentv1.Outcome_OUTCOME_NOT_APPROVED || !strings.Contains(res.Message, "nothing was changed") {
			t.Errorf("declined: %v", res)
		}
		if r := apResult(t, st); r.Outcome != agentv1.Outcome_OUTCOME_NOT_APPROVED {
			t.Errorf("the deploy stream ended with %v", r)
		}
		plUnchanged(t, alpha, before)
	})

	t.Run("TimeoutChangesNothing", func(t *testing.T) {
		src := upload(t)
		before := plStateOf(t, alpha)
		conn := dial(t, ctl, "alpha")
		// Longer than the client's stall timeout: the stream stays usable
		// (heartbeats) while the agent waits.
		wait := client.StallTimeout + 2*time.Second
		id, st, _ := apAwaitApproval(t, conn, signer, src, wait)
		res := apResult(t, st)
		if res.Outcome != agentv1.Outcome_OUTCOME_NOT_APPROVED || !strings.Contains(res.Message, "not approved within "+wait.String()+"; nothing was changed") {
			t.Errorf("timed out: %v", res)
		}
		if err := conn.Approve(t.Context(), signer, id, res.StorePath); !errors.Is(err, client.ErrNotAwaitingApproval) {
			t.Errorf("approving after the timeout: want ErrNotAwaitingApproval, got %v", err)
		}
		plUnchanged(t, alpha, before)
	})

	t.Run("ControllerGoneWatchReattaches", func(t *testing.T) {
		src := upload(t)
		conn := dial(t, ctl, "alpha")
		ctx, cancel := context.WithCancel(t.Context())
		in := &agentv1.Intent{Action: agentv1.Action_ACTION_SWITCH, DeploymentId: client.NewDeploymentID(time.Now()),
			SourceDigest: src.Digest, SourceSubdir: src.Subdir, FlakeAttr: "alpha"}
		client.AwaitApproval(in, time.Minute)
		st, err := conn.Deploy(ctx, signer, in)
		if err != nil {
			t.Fatal(err)
		}
		var aw *agentv1.AwaitingApproval
		for aw == nil {
			ev, err := st.Recv()
			if err != nil || ev.GetResult() != nil {
				t.Fatalf("before awaiting approval: %v %v", err, ev.GetResult())
			}
			aw = ev.GetAwaitingApproval()
		}
		cancel() // the controller goes away while the agent waits
		time.Sleep(500 * time.Millisecond)
		if rec := alpha.JournalRecord(t, in.DeploymentId); rec.State != journal.StateRunning || rec.Phase != "approve" {
			t.Fatalf("after the controller left: %s in %s (%s), want still awaiting approval", rec.State, rec.Phase, rec.Reason)
		}
		conn2 := dial(t, ctl, "alpha")
		w, err := conn2.Watch(t.Context(), in.DeploymentId)
		if err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := w.Recv()
			if err != nil || ev.GetResult() != nil {
				t.Fatalf("watch before awaiting approval: %v %v", err, ev.GetResult())
			}
			if ev.GetAwaitingApproval() != nil {
				break
			}
		}
		if err := conn2.Approve(t.Context(), signer, in.DeploymentId, aw.NewStorePath); err != nil {
			t.Fatalf("approve: %v", err)
		}
		for {
			ev, err := w.Recv()
			if err != nil || ev.GetResult() != nil {
				t.Fatalf("watch before awaiting confirmation: %v %v", err, ev.GetResult())
			}
			if ev.GetAwaitingConfirmation() != nil {
				break
			}
		}
		if _, err := conn2.Confirm(t.Context(), signer, in.DeploymentId); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		if rec := alpha.WaitRecord(t, in.DeploymentId, time.Minute, journal.StateConfirmed); rec.NewPath != aw.NewStorePath {
			t.Errorf("confirmed %s, approved %s", rec.NewPath, aw.NewStorePath)
		}
	})

	t.Run("AgentRestartWhileAwaiting", func(t *testing.T) {
		src := upload(t)
		before := plStateOf(t, alpha)
		id, _, aw := apAwaitApproval(t, dial(t, ctl, "alpha"), signer, src, time.Minute)
		restarted := time.Now()
		alpha.RestartAgent(t)
		rec := alpha.WaitRecord(t, id, time.Minute, journal.StateNotApproved)
		if !strings.Contains(rec.Reason, "the agent restarted while the deployment awaited approval; nothing was changed") {
			t.Errorf("reason %q", rec.Reason)
		}
		plUnchanged(t, alpha, before)
		conn := waitServing(t, ctl, "alpha", restarted)
		if err := conn.Approve(t.Context(), signer, id, aw.NewStorePath); !errors.Is(err, client.ErrNotAwaitingApproval) {
			t.Errorf("approving after the restart: want ErrNotAwaitingApproval, got %v", err)
		}
	})

	t.Run("DeclinedAtThePrompt", func(t *testing.T) {
		f.SetVariant("alpha", salted(nixtest.Traced))
		before := plStateOf(t, alpha)
		r, ids, _ := apPrompted(t, f, alpha, "n")
		if r.Code != 3 || !strings.Contains(r.Stderr, "nothing changed") {
			t.Errorf("want exit 3 saying nothing changed, got %s", r)
		}
		if len(ids) != 1 {
			t.Fatalf("want one deployment, got %v", ids)
		}
		rec := alpha.JournalRecord(t, ids[0])
		if rec.State != journal.StateNotApproved || !strings.Contains(rec.Reason, "declined by") {
			t.Errorf("record: %s (%s), want not-approved, declined", rec.State, rec.Reason)
		}
		apOneEvaluation(t, alpha, ids[0])
		plUnchanged(t, alpha, before)
	})
}
