package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/internal/flakeinputs"
	"github.com/pantheros/panther/lab/nixtest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// inputStream is an UploadInput stream fed from a list of messages.
type inputStream struct {
	grpc.ServerStream
	msgs []*agentv1.UploadInputRequest
	resp *agentv1.UploadInputResponse
}

func (u *inputStream) Context() context.Context { return context.Background() }
func (u *inputStream) Recv() (*agentv1.UploadInputRequest, error) {
	if len(u.msgs) == 0 {
		return nil, io.EOF
	}
	m := u.msgs[0]
	u.msgs = u.msgs[1:]
	return m, nil
}
func (u *inputStream) SendAndClose(r *agentv1.UploadInputResponse) error {
	u.resp = r
	return nil
}

// TestUploadInputOnlyTheSignedNAREntersTheStore: with real nix, an input
// upload whose bytes are corrupt or truncated, or whose intent names other
// than one input, is refused and the path stays out of the store; the
// exact NAR enters it, and a deploy naming an input the store lacks is
// refused before anything runs.
func TestUploadInputOnlyTheSignedNAREntersTheStore(t *testing.T) {
	n := nixtest.Nix(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "msg.txt"), []byte(t.Name()+time.Now().String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The path nix would give the tree and its NAR, not in the store yet.
	cmd := exec.Command("nix", "store", "add-path", "--dry-run", "--name", "source", src)
	cmd.Env = nixtest.Env(t).Environ
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimSpace(string(out))
	var nar bytes.Buffer
	if err := n.Dump(ctx, src, &nar); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(nar.Bytes())
	narHash := "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	fi := &agentv1.FlakeInput{Name: "dep", StorePath: path, NarHash: narHash, NarSize: int64(nar.Len())}

	d := "sha256:" + strings.Repeat("0", 64)
	s := fuzzServer(t, oneSource{digest: d})
	s.c.Inputs = flakeinputs.Store{Nix: n, TempDir: t.TempDir(), MaxBytes: 1 << 20}
	nonce := 0
	upload := func(inputs []*agentv1.FlakeInput, body []byte) error {
		nonce++
		in := &agentv1.Intent{Host: "alpha", Action: agentv1.Action_ACTION_UPLOAD, Nonce: []byte(strings.Repeat(string(rune('a'+nonce)), 16)),
			IssuedAt: timestamppb.New(fuzzNow), ExpiresAt: timestamppb.New(fuzzNow.Add(time.Minute)), Inputs: inputs}
		st := &inputStream{msgs: []*agentv1.UploadInputRequest{
			{Msg: &agentv1.UploadInputRequest_Envelope{Envelope: signEnvelope(in)}},
			{Msg: &agentv1.UploadInputRequest_Chunk{Chunk: body}},
		}}
		return s.UploadInput(st)
	}
	missing := func() bool {
		resp, err := s.HasInputs(ctx, &agentv1.HasInputsRequest{StorePaths: []string{path}})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Missing) == 1
	}
	b := nar.Bytes()
	corrupt := append([]byte(nil), b...)
	corrupt[len(corrupt)-20] ^= 0x20
	for name, tc := range map[string]struct {
		inputs []*agentv1.FlakeInput
		body   []byte
	}{
		"corrupt":    {[]*agentv1.FlakeInput{fi}, corrupt},
		"truncated":  {[]*agentv1.FlakeInput{fi}, b[:len(b)/2]},
		"two inputs": {[]*agentv1.FlakeInput{fi, fi}, b},
	} {
		if err := upload(tc.inputs, tc.body); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
		if !missing() {
			t.Fatalf("%s: %s entered the store", name, path)
		}
	}

	deploy := &agentv1.Intent{Host: "alpha", Action: agentv1.Action_ACTION_BUILD, SourceDigest: d, Inputs: []*agentv1.FlakeInput{fi}}
	if _, err := s.flakeRef(ctx, deploy); !strings.Contains(err.Error(), path) || status.Code(inputStatus(err)) != codes.FailedPrecondition {
		t.Errorf("deploy with the input missing: %v, want FailedPrecondition naming it", err)
	}
	if err := upload([]*agentv1.FlakeInput{fi}, b); err != nil {
		t.Fatalf("the exact NAR: %v", err)
	}
	if missing() {
		t.Fatalf("%s not in the store after its upload", path)
	}
	if _, err := s.flakeRef(ctx, deploy); err != nil {
		t.Errorf("deploy with the input present: %v", err)
	}
}
