package client

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pantheros/panther/controller/rollout"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// The read-only calls, in the controller's types.

// HostStatus is an agent's answer to Status.
type HostStatus struct {
	Host              string
	AgentVersion      string
	AgentUptime       time.Duration
	CurrentStorePath  string
	CurrentGeneration int64
	NixosVersion      string
	Uptime            time.Duration
	SystemState       string
	FailedUnits       []string
	// Pending is the deployment awaiting confirmation or approval, if any.
	Pending *Pending
	// Last is the newest deployment, if any.
	Last *Deployment
	// RTT is the call's round trip.
	RTT time.Duration

	wire []byte // the agent API's JSON mapping, for --json
}

// MarshalJSON is the status in the agent API's JSON mapping.
func (s *HostStatus) MarshalJSON() ([]byte, error) { return s.wire, nil }

// Pending is a deployment awaiting confirmation (Deadline: when it rolls
// back) or, with AwaitingApproval, approval (Deadline: when it ends with
// nothing changed).
type Pending struct {
	DeploymentID     string
	Deadline         time.Time
	NewStorePath     string
	AwaitingApproval bool
}

// Deployment is one deployment the agent keeps.
type Deployment struct {
	DeploymentID string
	Action       string // "switch", "rollback", …
	Outcome      rollout.Outcome
	Message      string
	StorePath    string
	Started      time.Time
	Finished     time.Time
	RequestedBy  string
	KeyID        string
	// SourceRev is the git revision the source was packed from ("" =
	// unknown); SourceDirty: the checkout had uncommitted changes.
	SourceRev   string
	SourceDirty bool
}

// Generation is one system generation of a host.
type Generation struct {
	Number       int64     `json:"number"`
	Created      time.Time `json:"created"`
	Current      bool      `json:"current"`
	StorePath    string    `json:"storePath"`
	NixosVersion string    `json:"nixosVersion"`
	DeploymentID string    `json:"deploymentId"`
	Result       string    `json:"result"`
	Reason       string    `json:"reason"`
	Failed       bool      `json:"failed"`
	SourceRev    string    `json:"sourceRev"`
	SourceDirty  bool      `json:"sourceDirty"`
}

func deploymentFromProto(d *agentv1.DeploymentInfo) *Deployment {
	if d == nil {
		return nil
	}
	return &Deployment{
		DeploymentID: d.GetDeploymentId(), Action: ActionName(d.GetAction()), Outcome: OutcomeFromProto(d.GetOutcome()),
		Message: d.GetMessage(), StorePath: d.GetStorePath(), Started: timeOf(d.GetStarted(), d.GetStarted() != nil),
		Finished: timeOf(d.GetFinished(), d.GetFinished() != nil), RequestedBy: d.GetRequestedBy(), KeyID: d.GetKeyId(),
		SourceRev: d.GetSourceRev(), SourceDirty: d.GetSourceDirty(),
	}
}

// Status asks host's agent for its status, within timeout.
func (f *Fleet) Status(ctx context.Context, host rollout.Host, timeout time.Duration) (*HostStatus, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	st, err := c.API.Status(cctx, &agentv1.StatusRequest{})
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	out := &HostStatus{
		Host: st.GetHost(), AgentVersion: st.GetAgentVersion(), AgentUptime: st.GetAgentUptime().AsDuration(),
		CurrentStorePath: st.GetCurrentStorePath(), CurrentGeneration: st.GetCurrentGeneration(), NixosVersion: st.GetNixosVersion(),
		Uptime: st.GetUptime().AsDuration(), SystemState: st.GetSystemState(), FailedUnits: st.GetFailedUnits(),
		Last: deploymentFromProto(st.GetLastDeployment()), RTT: time.Since(t0),
	}
	if p := st.GetPending(); p != nil {
		out.Pending = &Pending{DeploymentID: p.GetDeploymentId(), Deadline: timeOf(p.GetDeadline(), p.GetDeadline() != nil), NewStorePath: p.GetNewStorePath(), AwaitingApproval: p.GetAwaitingApproval()}
	}
	out.wire, _ = protojson.Marshal(st)
	return out, nil
}

// Generations lists host's system generations.
func (f *Fleet) Generations(ctx context.Context, host rollout.Host) ([]Generation, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	resp, err := c.API.ListGenerations(ctx, &agentv1.ListGenerationsRequest{})
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	var out []Generation
	for _, g := range resp.GetGenerations() {
		out = append(out, Generation{
			Number: g.GetNumber(), Created: timeOf(g.GetCreated(), g.GetCreated() != nil), Current: g.GetCurrent(),
			StorePath: g.GetStorePath(), NixosVersion: g.GetNixosVersion(), DeploymentID: g.GetDeploymentId(),
			Result: g.GetResult(), Reason: g.GetReason(), Failed: g.GetFailed(),
			SourceRev: g.GetSourceRev(), SourceDirty: g.GetSourceDirty(),
		})
	}
	return out, nil
}

// Deployments lists the deployments host's agent keeps.
func (f *Fleet) Deployments(ctx context.Context, host rollout.Host) ([]*Deployment, error) {
	c, err := f.conn(ctx, host)
	if err != nil {
		return nil, err
	}
	resp, err := c.API.ListDeployments(ctx, &agentv1.ListDeploymentsRequest{})
	if err != nil {
		return nil, AgentError(host.Name, err)
	}
	var out []*Deployment
	for _, d := range resp.GetDeployments() {
		out = append(out, deploymentFromProto(d))
	}
	return out, nil
}

// Logs copies deployment id's log (the newest with id "") to w; with
// follow it goes on until the deployment ends.
func (f *Fleet) Logs(ctx context.Context, host rollout.Host, id string, follow bool, w io.Writer) error {
	c, err := f.conn(ctx, host)
	if err != nil {
		return err
	}
	st, err := c.API.Logs(ctx, &agentv1.LogsRequest{DeploymentId: id, Follow: follow})
	if err != nil {
		return AgentError(host.Name, err)
	}
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return AgentError(host.Name, err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return err
		}
	}
}

var _ json.Marshaler = (*HostStatus)(nil)
