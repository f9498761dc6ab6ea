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
	"github.com/pantheros/panther/internal/tailnet"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// fakeControl is the ControlPlane port kept in tests: it says what err is.
type fakeControl struct{ err error }

func (f *fakeControl) ControlConnected() error { return f.err }

// The ports the engine needs but a confirm of an unknown deployment never
// calls: a call would panic on the nil interface.
type (
	noNix    struct{ deploy.Nix }
	noAct    struct{ deploy.Activator }
	noHealth struct{ deploy.Health }
)

func reachServer(t *testing.T, ctl ControlPlane) *Server {
	t.Helper()
	s := fuzzServer(t, nil)
	j, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := deploy.New(deploy.Options{Host: "alpha"}, deploy.Deps{Nix: noNix{}, Activator: noAct{}, Health: noHealth{}, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s.c.Engine, s.c.Journal, s.c.Control = e, j, ctl
	return s
}

func confirmReq(id string) *agentv1.ConfirmRequest {
	in := &agentv1.Intent{Host: "alpha", Action: agentv1.Action_ACTION_CONFIRM, DeploymentId: id,
		Nonce: []byte(strings.Repeat("n", 16) + id)}
	in.IssuedAt, in.ExpiresAt = timestamppb.New(fuzzNow.Add(-10*time.Second)), timestamppb.New(fuzzNow.Add(200*time.Second))
	return &agentv1.ConfirmRequest{Envelope: signEnvelope(in)}
}

// TestConfirmRefusedWhileControlDown: a confirm that reaches the agent while
// the agent's own tailnet node has no live map poll with the coordination
// server is refused with FailedPrecondition, one human line and the
// CONTROL_PLANE_DOWN ErrorInfo (pantherctl retries on it until the
// deadline), before the engine sees it; with control connected the same
// confirm goes through to the engine.
func TestConfirmRefusedWhileControlDown(t *testing.T) {
	ctl := &fakeControl{err: tailnet.ErrControlDown}
	s := reachServer(t, ctl)
	_, err := s.Confirm(context.Background(), confirmReq("20261207T210000Z-aaaaaa"))
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("confirm with control down: want FailedPrecondition, got %v", err)
	}
	if !client.IsControlDown(err) {
		t.Errorf("the refusal carries no %s ErrorInfo: %v", agentv1.ReasonControlPlaneDown, err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"alpha", "coordination server", "no new tailnet node could reach it", "rolls back at the deadline"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}

	// Connected: the check lets it through; the engine answers (no such
	// deployment here).
	ctl.err = nil
	_, err = s.Confirm(context.Background(), confirmReq("20261207T210000Z-bbbbbb"))
	if status.Code(err) != codes.NotFound || client.IsControlDown(err) {
		t.Fatalf("confirm with control up: want the engine's NotFound, got %v", err)
	}
}

func TestControlDownOnlyForTheRefusal(t *testing.T) {
	for _, err := range []error{
		nil, errors.New("plain"),
		status.Error(codes.FailedPrecondition, "deployment is rolled-back"),
		status.Error(codes.Unavailable, "connection refused"),
	} {
		if client.IsControlDown(err) {
			t.Errorf("client.IsControlDown(%v) = true", err)
		}
	}
}
