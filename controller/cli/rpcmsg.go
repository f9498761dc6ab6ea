package cli

import (
	"strings"
)

// humanRPC turns the text of a gRPC status into words for people: gRPC
// wraps transport failures as `connection error: desc = "transport: Error
// while dialing: dial tcp …: connect: connection refused"`, which says
// nothing to someone deploying a host. The innermost cause is kept and the
// common ones are said plainly.
func humanRPC(msg string) string {
	s := strings.TrimSpace(msg)
	for {
		i := strings.Index(s, `desc = "`)
		if i < 0 {
			break
		}
		inner := s[i+len(`desc = "`):]
		inner = strings.TrimSuffix(inner, `"`)
		s = strings.ReplaceAll(inner, `\"`, `"`)
	}
	for _, p := range []string{"connection error: ", "transport: ", "Error while dialing: ", "error reading server preface: ",
		"authentication handshake failed: ", "rpc error: "} {
		for strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
		}
	}
	lower := strings.ToLower(s)
	switch {
	case strings.Contains(lower, "connection refused"):
		return "connection refused: nothing listens on the agent's port"
	case strings.Contains(lower, "i/o timeout"), strings.Contains(lower, "context deadline exceeded"), strings.Contains(lower, "deadline exceeded"):
		return "no answer in time"
	case strings.Contains(lower, "connection reset by peer"), strings.Contains(lower, "connection closed before server preface"),
		strings.Contains(lower, "broken pipe"), lower == "eof", strings.HasSuffix(lower, ": eof"):
		return "the connection was closed by the other side"
	case strings.Contains(lower, "network is unreachable"), strings.Contains(lower, "no route to host"):
		return "no route to the host"
	case strings.Contains(lower, "http2: frame too large"), strings.Contains(lower, "malformed http response"):
		return "the port does not speak panther's gRPC API"
	}
	return s
}
