package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/signing"
)

// toStatus maps domain errors to gRPC status codes, in one place. The
// message is the domain error's text: one human line.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, signing.ErrUnknownKey), errors.Is(err, signing.ErrBadSignature):
		code = codes.Unauthenticated
	case errors.Is(err, signing.ErrWrongHost), errors.Is(err, signing.ErrWrongAction):
		code = codes.PermissionDenied
	case errors.Is(err, signing.ErrExpired), errors.Is(err, signing.ErrNotYetValid),
		errors.Is(err, signing.ErrReplay), errors.Is(err, signing.ErrLifetime):
		code = codes.PermissionDenied
	case errors.Is(err, signing.ErrMalformed), errors.Is(err, signing.ErrNonceTooShort):
		code = codes.InvalidArgument
	case errors.Is(err, deploy.ErrBusy), errors.Is(err, deploy.ErrNotPending),
		errors.Is(err, deploy.ErrDeadlinePassed), errors.Is(err, deploy.ErrSourceMissing),
		errors.Is(err, deploy.ErrSwitchLocked), errors.Is(err, deploy.ErrStopsAgent),
		errors.Is(err, deploy.ErrWrongFlakeHost), errors.Is(err, deploy.ErrNewAgentPending):
		code = codes.FailedPrecondition
	case errors.Is(err, deploy.ErrInvalidRequest), errors.Is(err, deploy.ErrTimeoutTooLong),
		errors.Is(err, journal.ErrBadID):
		code = codes.InvalidArgument
	case errors.Is(err, deploy.ErrNoSuchGen), errors.Is(err, journal.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, journal.ErrDuplicate):
		code = codes.AlreadyExists
	case errors.Is(err, deploy.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, archive.ErrTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, archive.ErrUnsafePath), errors.Is(err, archive.ErrSymlinkEscape),
		errors.Is(err, archive.ErrUnsupportedType), errors.Is(err, archive.ErrTruncated),
		errors.Is(err, archive.ErrDigestMismatch), errors.Is(err, archive.ErrBadDigest):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
