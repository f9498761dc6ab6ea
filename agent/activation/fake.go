package activation

import (
	"context"
	"strings"
	"sync"
)

// FakeRunner records every command and answers from a script.
type FakeRunner struct {
	mu    sync.Mutex
	Calls []string
	// Respond returns output lines and the exit code for argv; nil means exit 0.
	Respond func(argv []string) ([]string, int, error)
}

// Run implements Runner.
func (f *FakeRunner) Run(ctx context.Context, argv []string, onLine func(string)) (int, error) {
	f.mu.Lock()
	f.Calls = append(f.Calls, strings.Join(argv, " "))
	respond := f.Respond
	f.mu.Unlock()
	if respond == nil {
		return 0, nil
	}
	lines, code, err := respond(argv)
	for _, l := range lines {
		if onLine != nil {
			onLine(l)
		}
	}
	return code, err
}
