package cli

import (
	"context"
	"time"

	"github.com/pantheros/panther/controller/client"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// One deployment per host (issue 13 item 2): a prompted switch or boot is
// sent once, with await_approval; the agent stops after its dry-activate
// and awaits Approve. The operator's "y" approves the exact dry-activated
// store path of the same deployment (no second evaluation, build or
// dry-activate), "n" declines it. These are the hooks the prompted path of
// deploy.go calls; the rollout core takes them over.

// pending is a host's deployment awaiting approval.
type pending struct {
	id       string
	stream   client.Stream
	approval *agentv1.AwaitingApproval
}

// prepareApproval sends the switch or boot, to await approval, and follows
// it until it awaits approval or ends.
func (b *batch) prepareApproval(ctx context.Context, hr *hostRun) {
	if err := b.connect(ctx, hr); err != nil {
		hr.err, hr.phase = err, "upload"
		return
	}
	action := agentv1.Action_ACTION_SWITCH
	if b.o.boot {
		action = agentv1.Action_ACTION_BOOT
	}
	in := b.intent(hr, action, "")
	client.AwaitApproval(in, b.o.approveTimeout)
	st, err := hr.conn.Deploy(ctx, b.s, in)
	if err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	f := &followed{}
	if err := hr.r.follow(st, f); err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	hr.summary = f.summary
	if f.approval != nil && f.result == nil {
		hr.pending = &pending{id: in.DeploymentId, stream: st, approval: f.approval}
		return
	}
	hr.result = f.result
	hr.phase = phaseName(f.result.GetFailedPhase())
}

// approveAndFollow approves the host's pending deployment with the store
// path it dry-activated and follows it on the same stream to its end, as a
// --yes switch is followed.
func (b *batch) approveAndFollow(ctx context.Context, hr *hostRun) {
	p := hr.pending
	hr.r.line("==> approving %s", p.approval.NewStorePath)
	if err := hr.conn.Approve(ctx, b.s, p.id, p.approval.NewStorePath); err != nil {
		hr.err = rpcError(hr.host.Name, err)
		return
	}
	if b.o.boot {
		f := &followed{}
		if err := hr.r.follow(p.stream, f); err != nil {
			hr.err = rpcError(hr.host.Name, err)
			return
		}
		hr.result, hr.phase = f.result, phaseName(f.result.GetFailedPhase())
		return
	}
	window := b.window(hr)
	if window == 0 {
		window = time.Minute
	}
	hr.result, hr.err = b.c.finishSwitch(ctx, b.n, hr.r, b.s, hr.host.Addr(), p.id, p.stream,
		confirmOpts{window: window, noConfirm: b.o.noConfirm, detach: b.o.detach})
	hr.phase = phaseName(hr.result.GetFailedPhase())
}

// declineAll declines every pending deployment: they end with nothing
// changed on the agents.
func (b *batch) declineAll(ctx context.Context, runs []*hostRun) {
	for _, hr := range runs {
		if hr.pending == nil {
			continue
		}
		res, err := hr.conn.Decline(ctx, b.s, hr.pending.id)
		if err != nil {
			hr.err = rpcError(hr.host.Name, err)
			continue
		}
		hr.result = res
	}
}

// awaitsApproval: the host's deployment dry-activated and awaits the answer.
func (h *hostRun) awaitsApproval() bool {
	return h.pending != nil && h.result == nil && h.err == nil && !h.skipped
}
