package server

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/signing"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// fuzzKey is the fixed operator key the fuzz harnesses sign with, so the
// fuzzer's inputs get past the signature to freshness, replay and policy.
var fuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

var fuzzNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// signEnvelope signs in with fuzzKey.
func signEnvelope(in *agentv1.Intent) *agentv1.SignedEnvelope {
	b, _ := proto.Marshal(in)
	id, sig := signing.Sign(fuzzKey, b)
	return &agentv1.SignedEnvelope{KeyId: id, Intent: b, Signature: sig}
}

func fuzzServer(t *testing.T, sources Sources) *Server {
	t.Helper()
	v, err := signing.NewVerifier([]string{signing.FormatPublicKey(signing.Public(fuzzKey))})
	if err != nil {
		t.Fatal(err)
	}
	replay, err := signing.OpenReplayCache(filepath.Join(t.TempDir(), "nonces"), fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replay.Close() })
	return New(Config{Host: "alpha", Verifier: v, Policy: signing.Policy{Host: "alpha"}, Replay: replay,
		Sources: sources, Now: func() time.Time { return fuzzNow }})
}

// FuzzSignedIntent signs a fuzzed intent with the trusted key inside the
// harness (random bytes never verify), so every input reaches the
// freshness, replay and policy checks and the flake reference. Accepted
// intents must be for this host, an allowed action, fresh, used once, and
// their subdir must not change the meaning of the path: reference.
func FuzzSignedIntent(f *testing.F) {
	f.Add("alpha", int32(agentv1.Action_ACTION_SWITCH), "d1", []byte("0123456789abcdef"), int64(-60), int64(240), "", "web")
	f.Add("beta", int32(agentv1.Action_ACTION_SWITCH), "d1", []byte("0123456789abcdef"), int64(-60), int64(240), "", "web")
	f.Add("alpha", int32(agentv1.Action_ACTION_BUILD), "d2", []byte("short"), int64(0), int64(30), "hosts?dir=x", "web")
	f.Add("alpha", int32(agentv1.Action_ACTION_SWITCH), "d3", []byte("0123456789abcdef"), int64(-4000), int64(-29), "a#b", "web")
	f.Add("alpha", int32(agentv1.Action_ACTION_BOOT), "d4", []byte("0123456789abcdefXX"), int64(10), int64(3700), "../x", "1web")
	digest := "sha256:" + strings.Repeat("0", 64)
	f.Fuzz(func(t *testing.T, host string, action int32, id string, nonce []byte, issued, expires int64, subdir, attr string) {
		in := &agentv1.Intent{Host: host, Action: agentv1.Action(action), DeploymentId: id, Nonce: nonce,
			IssuedAt: timestamppb.New(fuzzNow.Add(time.Duration(issued) * time.Second)), ExpiresAt: timestamppb.New(fuzzNow.Add(time.Duration(expires) * time.Second)),
			SourceDigest: digest, SourceSubdir: subdir, FlakeAttr: attr}
		s := fuzzServer(t, oneSource{digest: digest})
		env := signEnvelope(in)
		allowed := []agentv1.Action{agentv1.Action_ACTION_BUILD, agentv1.Action_ACTION_DRY_ACTIVATE, agentv1.Action_ACTION_SWITCH, agentv1.Action_ACTION_BOOT}
		got, err := s.verify(context.Background(), env, allowed...)
		if err != nil {
			if c := status.Code(err); c == codes.OK || c == codes.Unknown || c == codes.Internal {
				t.Fatalf("refusal without a specific code: %v", err)
			}
			return
		}
		if got.Host != "alpha" {
			t.Fatalf("accepted an intent for host %q", got.Host)
		}
		okAction := false
		for _, a := range allowed {
			okAction = okAction || got.Action == a
		}
		if !okAction {
			t.Fatalf("accepted action %v", got.Action)
		}
		if len(got.Nonce) < 16 {
			t.Fatalf("accepted a %d-byte nonce", len(got.Nonce))
		}
		if fuzzNow.Sub(got.ExpiresAt.AsTime()) > 30*time.Second || got.IssuedAt.AsTime().Sub(fuzzNow) > 30*time.Second ||
			got.ExpiresAt.AsTime().Sub(got.IssuedAt.AsTime()) > time.Hour {
			t.Fatalf("accepted a stale, future or too long intent: %v .. %v", got.IssuedAt.AsTime(), got.ExpiresAt.AsTime())
		}
		if _, err := s.verify(context.Background(), env, allowed...); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("the same envelope twice: %v, want a replay refusal", err)
		}
		ref, err := s.flakeRef(context.Background(), got)
		if err != nil {
			return
		}
		if strings.ContainsAny(strings.TrimPrefix(ref, "path:"), "?#%") || strings.Contains(ref, "..") {
			t.Fatalf("subdir %q made the flake reference %q", subdir, ref)
		}
	})
}

// uploadStream is an UploadSource stream fed from a list of messages.
type uploadStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*agentv1.UploadSourceRequest
	resp *agentv1.UploadSourceResponse
}

func (u *uploadStream) Context() context.Context { return u.ctx }
func (u *uploadStream) Recv() (*agentv1.UploadSourceRequest, error) {
	if len(u.msgs) == 0 {
		return nil, io.EOF
	}
	m := u.msgs[0]
	u.msgs = u.msgs[1:]
	return m, nil
}
func (u *uploadStream) SendAndClose(r *agentv1.UploadSourceResponse) error {
	u.resp = r
	return nil
}

// FuzzUploadStream sends fuzzed archive bytes, cut into fuzzed chunks,
// behind a validly signed upload intent for their digest (or, when
// wrongDigest, for another), into a real store. Stored sources must hash to
// their digest; nothing may be left outside the store's trees.
func FuzzUploadStream(f *testing.F) {
	var tarBuf bytes.Buffer
	writeSeedTar(&tarBuf)
	f.Add(tarBuf.Bytes(), uint16(100), false)
	f.Add(tarBuf.Bytes(), uint16(7), true)
	f.Add([]byte("not a tar"), uint16(3), false)
	f.Add([]byte{}, uint16(0), false)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, wrongDigest bool) {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		if wrongDigest {
			digest = "sha256:" + strings.Repeat("ab", 32)
		}
		store := archive.Store{Dir: filepath.Join(t.TempDir(), "sources")}
		s := fuzzServer(t, store)
		s.c.Limits = archive.Limits{MaxBytes: 1 << 20, MaxFiles: 200}
		in := &agentv1.Intent{Host: "alpha", Action: agentv1.Action_ACTION_UPLOAD, DeploymentId: "u1", Nonce: []byte("0123456789abcdef"),
			IssuedAt: timestamppb.New(fuzzNow), ExpiresAt: timestamppb.New(fuzzNow.Add(time.Minute)), SourceDigest: digest}
		msgs := []*agentv1.UploadSourceRequest{{Msg: &agentv1.UploadSourceRequest_Envelope{Envelope: signEnvelope(in)}}}
		n := int(chunk%4096) + 1
		for rest := data; len(rest) > 0; {
			k := min(n, len(rest))
			msgs = append(msgs, &agentv1.UploadSourceRequest{Msg: &agentv1.UploadSourceRequest_Chunk{Chunk: rest[:k]}})
			rest = rest[k:]
		}
		st := &uploadStream{ctx: context.Background(), msgs: msgs}
		err := s.UploadSource(st)
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("upload refused with a non-status error: %v", err)
			}
			if store.Has(digest) {
				t.Fatalf("refused upload (%v) left a tree", err)
			}
			return
		}
		if wrongDigest {
			t.Fatal("stored bytes under a digest they do not hash to")
		}
		if !store.Has(digest) || st.resp.GetDigest() != digest || st.resp.GetBytesReceived() != int64(len(data)) {
			t.Fatalf("accepted upload: has %v, response %v", store.Has(digest), st.resp)
		}
	})
}

func writeSeedTar(w io.Writer) {
	tw := tar.NewWriter(w)
	for name, body := range map[string]string{"flake.nix": "{ outputs = _: {}; }", "hosts/web/default.nix": "{}"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
}
