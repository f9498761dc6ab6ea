package client

import (
	"context"
	"io"

	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// MissingInputs returns which of the store paths of locked flake inputs
// the agent's nix store lacks.
func (c *Conn) MissingInputs(ctx context.Context, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	resp, err := c.API.HasInputs(ctx, &agentv1.HasInputsRequest{StorePaths: paths})
	if err != nil {
		return nil, err
	}
	return resp.Missing, nil
}

// UploadInput streams the NAR of one locked input from r under a signed
// ACTION_UPLOAD intent naming exactly that input, and returns the bytes
// sent. The agent adds it to its store only if the bytes are exactly the
// signed NAR.
func (c *Conn) UploadInput(ctx context.Context, s Signer, in *agentv1.FlakeInput, r io.Reader) (int64, error) {
	env, err := s.Sign(&agentv1.Intent{Host: c.Host, Action: agentv1.Action_ACTION_UPLOAD, Inputs: []*agentv1.FlakeInput{in}})
	if err != nil {
		return 0, err
	}
	stream, err := c.API.UploadInput(ctx)
	if err != nil {
		return 0, err
	}
	if err := stream.Send(&agentv1.UploadInputRequest{Msg: &agentv1.UploadInputRequest_Envelope{Envelope: env}}); err != nil {
		_, rerr := stream.CloseAndRecv()
		if rerr != nil {
			return 0, rerr
		}
		return 0, err
	}
	sent, err := sendChunks(r, func(chunk []byte) error {
		return stream.Send(&agentv1.UploadInputRequest{Msg: &agentv1.UploadInputRequest_Chunk{Chunk: chunk}})
	})
	if err != nil {
		return sent, err
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return sent, err
	}
	return sent, nil
}
