package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/flakeinputs"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// Inputs is the agent's nix store as far as locked flake inputs go
// (*flakeinputs.Store is one).
type Inputs interface {
	Missing(ctx context.Context, paths []string) ([]string, error)
	Add(ctx context.Context, in flakeinputs.Input, r io.Reader) (int64, error)
}

var _ Inputs = flakeinputs.Store{}

// sealedSources is what a Sources offers when its trees can be checked
// against what was uploaded (archive.Store does).
type sealedSources interface {
	Verify(digest string) error
	Remove(digest string) error
}

// inputStatus maps the input errors to gRPC codes, then the rest as
// toStatus does.
func inputStatus(err error) error {
	switch {
	case errors.Is(err, flakeinputs.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, flakeinputs.ErrBadInput), errors.Is(err, flakeinputs.ErrTruncated),
		errors.Is(err, flakeinputs.ErrHashMismatch), errors.Is(err, flakeinputs.ErrPathMismatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, flakeinputs.ErrLock):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, flakeinputs.ErrMissing), errors.Is(err, archive.ErrModified):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return toStatus(err)
}

// HasInputs implements AgentServiceServer.
func (s *Server) HasInputs(ctx context.Context, req *agentv1.HasInputsRequest) (*agentv1.HasInputsResponse, error) {
	if s.c.Inputs == nil {
		return nil, status.Error(codes.Unimplemented, "this agent does not take flake inputs")
	}
	missing, err := s.c.Inputs.Missing(ctx, req.StorePaths)
	if err != nil {
		return nil, inputStatus(err)
	}
	return &agentv1.HasInputsResponse{Missing: missing}, nil
}

// UploadInput implements AgentServiceServer.
func (s *Server) UploadInput(stream agentv1.AgentService_UploadInputServer) (err error) {
	ctx := stream.Context()
	defer s.streamEnded(ctx, "UploadInput", s.c.Now(), &err)
	if s.c.Inputs == nil {
		return status.Error(codes.Unimplemented, "this agent does not take flake inputs")
	}
	first, err := stream.Recv()
	if err != nil {
		return toStatus(err)
	}
	in, err := s.verify(ctx, first.GetEnvelope(), agentv1.Action_ACTION_UPLOAD)
	if err != nil {
		return err
	}
	if len(in.Inputs) != 1 {
		return status.Errorf(codes.InvalidArgument, "an input upload intent names exactly one input, this one names %d", len(in.Inputs))
	}
	fi := inputFromProto(in.Inputs[0])
	pr, received := chunkReader(stream.Recv)
	_, err = s.c.Inputs.Add(ctx, fi, pr)
	pr.CloseWithError(errors.New("upload ended"))
	if err != nil {
		s.c.Log.Warn("input upload refused", "input", fi.Name, "path", fi.StorePath, "error", err)
		return inputStatus(err)
	}
	return stream.SendAndClose(&agentv1.UploadInputResponse{StorePath: fi.StorePath, BytesReceived: received.Load()})
}

func inputFromProto(p *agentv1.FlakeInput) flakeinputs.Input {
	return flakeinputs.Input{Name: p.GetName(), StorePath: p.GetStorePath(), NarHash: p.GetNarHash(), NarSize: p.GetNarSize()}
}

// checkSource refuses a stored source that is no longer what was uploaded
// (removing it, so that the next deploy uploads it again), one whose lock
// is incomplete, and a deploy whose signed inputs are not all in the store.
func (s *Server) checkSource(ctx context.Context, in *agentv1.Intent, dir string) error {
	if sealed, ok := s.c.Sources.(sealedSources); ok {
		if err := sealed.Verify(in.SourceDigest); err != nil {
			if rerr := sealed.Remove(in.SourceDigest); rerr != nil {
				s.c.Log.Warn("removing a modified source", "digest", in.SourceDigest, "error", rerr)
			}
			return fmt.Errorf("%w (removed: deploy again to upload it anew)", err)
		}
	}
	if s.c.LockCheck != nil {
		if err := flakeinputs.CheckLock(ctx, s.c.LockCheck, dir); err != nil {
			return err
		}
	}
	if len(in.Inputs) == 0 {
		return nil
	}
	if s.c.Inputs == nil {
		return status.Error(codes.Unimplemented, "this agent does not take flake inputs: deploy with --inputs fetch")
	}
	paths := make([]string, len(in.Inputs))
	for i, fi := range in.Inputs {
		paths[i] = fi.GetStorePath()
	}
	missing, err := s.c.Inputs.Missing(ctx, paths)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (upload it first)", flakeinputs.ErrMissing, missing[0])
	}
	if u, ok := s.c.Inputs.(interface{ Use(paths []string) }); ok {
		u.Use(paths) // keep them rooted: the next deploy needs no upload
	}
	return nil
}

// revRE is a full git commit id (sha1 or sha256).
var revRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// withRev adds the signed git revision of a clean checkout to a path: flake
// reference, so that the flake's self.rev (and
// system.configurationRevision = self.rev or "dirty") is set; a dirty or
// unknown revision leaves it unset, as nix does for a dirty git tree.
func withRev(ref string, in *agentv1.Intent) (string, error) {
	if in.SourceRev == "" || in.SourceDirty {
		return ref, nil
	}
	if !revRE.MatchString(in.SourceRev) {
		return "", fmt.Errorf("%w: source rev %q is not a git commit id", deploy.ErrInvalidRequest, in.SourceRev)
	}
	return ref + "?" + url.Values{"rev": {in.SourceRev}}.Encode(), nil
}

// sourceIntact reports whether a present source is still what was
// uploaded; a modified one is removed, so that HasSource says it is absent
// and the controller uploads it again.
func (s *Server) sourceIntact(digest string) bool {
	sealed, ok := s.c.Sources.(sealedSources)
	if !ok {
		return true
	}
	if err := sealed.Verify(digest); err != nil {
		s.c.Log.Warn("stored source was modified; removing it", "digest", digest, "error", err)
		if err := sealed.Remove(digest); err != nil {
			s.c.Log.Warn("removing a modified source", "digest", digest, "error", err)
		}
		return false
	}
	return true
}

func sourceInfo(in *agentv1.Intent) deploy.SourceInfo {
	si := deploy.SourceInfo{Rev: in.SourceRev, Dirty: in.SourceDirty, FetchInputs: in.FetchInputs}
	for _, fi := range in.Inputs {
		si.Inputs = append(si.Inputs, fi.GetStorePath())
	}
	return si
}
