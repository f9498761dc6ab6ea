package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/internal/signing"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// FuzzVerifyEnvelope feeds arbitrary envelopes to the agent's verification:
// it must never panic, and must accept nothing that the trusted key did not
// sign for this host.
func FuzzVerifyEnvelope(f *testing.F) {
	key, _ := signing.GenerateKey()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sign := func(in *agentv1.Intent) []byte {
		b, _ := proto.Marshal(in)
		id, sig := signing.Sign(key, b)
		env, _ := proto.Marshal(&agentv1.SignedEnvelope{KeyId: id, Intent: b, Signature: sig})
		return env
	}
	good := &agentv1.Intent{Host: "alpha", Action: agentv1.Action_ACTION_SWITCH, DeploymentId: "d1",
		Nonce: make([]byte, 16), IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(time.Minute))}
	f.Add(sign(good))
	other := proto.Clone(good).(*agentv1.Intent)
	other.Host = "beta"
	f.Add(sign(other))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x01, 0x41, 0x12, 0x00, 0x1a, 0x40})

	f.Fuzz(func(t *testing.T, data []byte) {
		var env agentv1.SignedEnvelope
		if err := proto.Unmarshal(data, &env); err != nil {
			return
		}
		v, _ := signing.NewVerifier([]string{signing.FormatPublicKey(signing.Public(key))})
		replay, err := signing.OpenReplayCache(filepath.Join(t.TempDir(), "nonces"), now)
		if err != nil {
			t.Fatal(err)
		}
		defer replay.Close()
		s := New(Config{Host: "alpha", Verifier: v, Policy: signing.Policy{Host: "alpha"}, Replay: replay,
			Now: func() time.Time { return now }})
		in, err := s.verify(context.Background(), &env, agentv1.Action_ACTION_SWITCH)
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("verify returned a non-status error: %v", err)
			}
			if status.Code(err) == codes.Internal || status.Code(err) == codes.Unknown {
				t.Fatalf("refusal without a specific code: %v", err)
			}
			return
		}
		if in.Host != "alpha" || in.Action != agentv1.Action_ACTION_SWITCH {
			t.Fatalf("accepted an intent for %s/%s", in.Host, in.Action)
		}
		if err := v.Verify(env.KeyId, env.Intent, env.Signature); err != nil {
			t.Fatalf("accepted an envelope whose signature does not verify: %v", err)
		}
		// The same envelope again is a replay.
		if _, err := s.verify(context.Background(), &env, agentv1.Action_ACTION_SWITCH); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("replay: %v", err)
		}
	})
}
