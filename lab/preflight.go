package lab

import (
	"errors"
	"os"
	"os/exec"

	"github.com/pantheros/panther/internal/nix"
	"github.com/pantheros/panther/lab/labnet"
	"github.com/pantheros/panther/lab/sandbox"
)

// Preflight reports whether the lab can run on this machine. The error is a
// *sandbox.MissingError (errors.Is(err, sandbox.ErrMissing)) listing every
// missing piece with how to get it: root, systemd and the sandbox tools,
// nix and a nix configuration it can build with, panther-agent and
// pantherctl, an IPv4 address.
func Preflight(lookPath func(string) (string, error)) error {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var items []string
	var me *sandbox.MissingError
	if err := sandbox.Check(true); errors.As(err, &me) {
		items = append(items, me.Items...)
	} else if err != nil {
		items = append(items, err.Error())
	}
	nixFound := true
	for _, bin := range []string{"nix", "nix-env"} {
		if _, err := lookPath(bin); err != nil {
			items = append(items, bin+" is not installed: apt-get install nix-bin (the hosts build with the machine's nix; no daemon needed as root)")
			nixFound = false
			break
		}
	}
	if nixFound {
		if item := nix.CheckConfig(os.Environ()); item != "" {
			items = append(items, item)
		}
	}
	if _, err := FindBinaries(); err != nil {
		items = append(items, err.Error())
	}
	if _, err := labnet.HostAddr(); err != nil {
		items = append(items, "no IPv4 address on a network interface (the hosts reach the tailnet through one): "+err.Error())
	}
	if len(items) > 0 {
		return &sandbox.MissingError{Items: items}
	}
	return nil
}
