package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/controller/client"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// approveEnv is a signed approval (or, with another action, any intent) of
// deployment id and store path for host; nonce makes it unique.
func approveEnv(host string, a agentv1.Action, id, path, nonce string) *agentv1.SignedEnvelope {
	in := &agentv1.Intent{Host: host, Action: a, DeploymentId: id, ExpectedStorePath: path,
		Nonce: []byte(strings.Repeat("a", 16) + nonce)}
	in.IssuedAt, in.ExpiresAt = timestamppb.New(fuzzNow.Add(-10*time.Second)), timestamppb.New(fuzzNow.Add(200*time.Second))
	return signEnvelope(in)
}

// TestApproveIsSignedAndChecked: Approve and Decline go through the same
// signature, host, action and replay checks as every mutating call, and
// their refusals carry a code and an ErrorInfo reason the client turns into
// typed errors.
func TestApproveIsSignedAndChecked(t *testing.T) {
	s := reachServer(t, nil)
	ctx := context.Background()
	// A deployment that ended: not awaiting approval.
	if err := s.c.Journal.Create(&journal.Record{ID: "d-done", Action: "switch", Host: "alpha", State: journal.StateConfirmed}); err != nil {
		t.Fatal(err)
	}
	approve := func(env *agentv1.SignedEnvelope) error {
		_, err := s.Approve(ctx, &agentv1.ApproveRequest{Envelope: env})
		return err
	}
	for _, tc := range []struct {
		name string
		env  *agentv1.SignedEnvelope
		code codes.Code
	}{
		{"no envelope", nil, codes.InvalidArgument},
		{"another host", approveEnv("beta", agentv1.Action_ACTION_APPROVE, "d-done", "/nix/store/x", "1"), codes.PermissionDenied},
		{"a confirm sent as an approval", approveEnv("alpha", agentv1.Action_ACTION_CONFIRM, "d-done", "/nix/store/x", "2"), codes.PermissionDenied},
		{"a decline sent as an approval", approveEnv("alpha", agentv1.Action_ACTION_DECLINE, "d-done", "/nix/store/x", "3"), codes.PermissionDenied},
		{"unknown deployment", approveEnv("alpha", agentv1.Action_ACTION_APPROVE, "d-nope", "/nix/store/x", "4"), codes.NotFound},
		{"not awaiting approval", approveEnv("alpha", agentv1.Action_ACTION_APPROVE, "d-done", "/nix/store/x", "5"), codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := approve(tc.env); status.Code(err) != tc.code {
				t.Errorf("Approve: %v, want %v", err, tc.code)
			}
		})
	}

	t.Run("replay", func(t *testing.T) {
		env := approveEnv("alpha", agentv1.Action_ACTION_APPROVE, "d-done", "/nix/store/x", "6")
		if err := approve(env); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("first use: %v", err)
		}
		if err := approve(env); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "replay") {
			t.Errorf("the same envelope again: %v, want PermissionDenied (replay)", err)
		}
	})

	t.Run("decline checks too", func(t *testing.T) {
		_, err := s.Decline(ctx, &agentv1.DeclineRequest{Envelope: approveEnv("alpha", agentv1.Action_ACTION_APPROVE, "d-done", "", "7")})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("an approval sent as a decline: %v, want PermissionDenied", err)
		}
		_, err = s.Decline(ctx, &agentv1.DeclineRequest{Envelope: approveEnv("alpha", agentv1.Action_ACTION_DECLINE, "d-done", "", "8")})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not awaiting approval") {
			t.Errorf("declining a finished deployment: %v", err)
		}
	})
}

// TestApprovalRefusalsAreTyped: the agent's refusal reasons reach the
// controller as typed errors (errors.Is), with the gRPC status kept.
func TestApprovalRefusalsAreTyped(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{deploy.ErrApprovalPathMismatch, client.ErrApprovalPathMismatch},
		{deploy.ErrNotAwaitingApproval, client.ErrNotAwaitingApproval},
	} {
		st := approvalStatus(tc.err)
		if status.Code(st) != codes.FailedPrecondition {
			t.Errorf("%v: code %v", tc.err, status.Code(st))
		}
		got := client.ApprovalError(st)
		if !errors.Is(got, tc.want) || status.Code(got) != codes.FailedPrecondition {
			t.Errorf("%v: client error %v (code %v), want %v", tc.err, got, status.Code(got), tc.want)
		}
	}
	if got := client.ApprovalError(status.Error(codes.FailedPrecondition, "other")); errors.Is(got, client.ErrApprovalPathMismatch) || errors.Is(got, client.ErrNotAwaitingApproval) {
		t.Errorf("a refusal without reason became typed: %v", got)
	}
}
