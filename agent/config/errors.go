package config

import "strings"

// Problem is one thing wrong with a config, tied to the JSON key it is about.
type Problem struct {
	// Field is the key's path, like "port" or "healthChecks[1].url"; empty
	// for a problem with the document as a whole (such as bad JSON).
	Field string
	// Message says what is wrong, in words.
	Message string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// Error lists every problem found in a config. It wraps [ErrInvalid].
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrInvalid.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// Fields returns the Field of every problem, in order.
func (e *Error) Fields() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.Field
	}
	return out
}

func problem(field, msg string) *Error {
	return &Error{Problems: []Problem{{Field: field, Message: msg}}}
}
