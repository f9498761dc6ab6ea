package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries are the programs the lab runs.
type Binaries struct {
	// Agent is panther-agent, run by every host.
	Agent string
	// Ctl is pantherctl, run by the demo.
	Ctl string
}

// ErrNoBinary is wrapped when panther-agent or pantherctl cannot be found.
var ErrNoBinary = errors.New("binary not found")

// FindBinaries looks for panther-agent and pantherctl next to the running
// executable (bin/ of `make build`), then on PATH.
func FindBinaries() (Binaries, error) {
	agent, err := findBinary("panther-agent")
	if err != nil {
		return Binaries{}, err
	}
	ctl, err := findBinary("pantherctl")
	if err != nil {
		return Binaries{}, err
	}
	return Binaries{Agent: agent, Ctl: ctl}, nil
}

func findBinary(name string) (string, error) {
	self, err := os.Executable()
	if err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			p := filepath.Join(filepath.Dir(self), name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s is neither next to this program nor on PATH: run 'make build' (it puts it in bin/)", ErrNoBinary, name)
	}
	return filepath.Abs(p)
}
