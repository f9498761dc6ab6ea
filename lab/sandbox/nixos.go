package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Where a sandbox keeps the directories that model NixOS's PATHs (see
// Options.HostDefaultPath).
const (
	// SystemdBinDir holds links to systemd's own commands only (those of
	// the Debian package systemd). It is PID 1's default PATH, the one a
	// unit without Environment=PATH sees, as on NixOS, where nixpkgs builds
	// systemd with DEFAULT_PATH set to systemd's bin directory: a transient
	// unit started with systemd-run finds systemctl but not mv or sh.
	SystemdBinDir = "/usr/lib/panther-sandbox/systemd/bin"
	// ServiceBinDir holds links to the commands NixOS puts on every
	// service's PATH besides systemd (coreutils, findutils, gnugrep,
	// gnused; Debian's coreutils, findutils, grep and sed) and those of
	// Options.ServicePackages.
	ServiceBinDir = "/usr/lib/panther-sandbox/service/bin"
	// ServicePath is the PATH of a NixOS service unit: set
	// Environment=PATH=<ServicePath> on a unit that stands for one (the
	// panther-agent unit of the test fleet and the lab does).
	ServicePath = ServiceBinDir + ":" + SystemdBinDir
)

// BootEntry is the boot loader entry of a sandbox, its boot default: when it
// exists at boot, its options line's init=<toplevel>/init names the system
// that comes up. Before systemd starts, the sandbox runs
// <toplevel>/activate <toplevel> (which, like NixOS's activation script,
// installs the system's units and points /run/current-system at it) and
// links /run/booted-system to <toplevel>, as the boot loader and NixOS's
// stage 2 do. So a reboot brings up the boot default, not whatever ran
// before. The lab flakes' switch-to-configuration switch and boot write it.
const BootEntry = "/boot/loader/entries/panther.conf"

// servicePackages are the Debian packages standing for the tools NixOS adds
// to every service's path (systemd's are in SystemdBinDir).
var servicePackages = []string{"coreutils", "findutils", "grep", "sed"}

// packageCommands returns the executables the Debian packages pkgs install
// under a bin or sbin directory, sorted and without duplicates (usr-merged
// /bin and /usr/bin entries count once by name).
func packageCommands(pkgs ...string) ([]string, error) {
	out, err := exec.Command("dpkg-query", append([]string{"-L"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("list the commands of %s (dpkg-query -L): %w", strings.Join(pkgs, ", "), err)
	}
	seen := map[string]bool{}
	var cmds []string
	for _, line := range strings.Split(string(out), "\n") {
		dir := filepath.Base(filepath.Dir(line))
		if dir != "bin" && dir != "sbin" || seen[filepath.Base(line)] {
			continue
		}
		if fi, err := os.Stat(line); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			continue
		}
		seen[filepath.Base(line)] = true
		cmds = append(cmds, line)
	}
	slices.Sort(cmds)
	return cmds, nil
}

// toolDir links each command into dir (a path inside the sandbox) under its
// base name.
func (u upperLayer) toolDir(dir string, cmds []string) error {
	for _, c := range cmds {
		if err := u.symlink(c, filepath.Join(dir, filepath.Base(c))); err != nil {
			return err
		}
	}
	return nil
}

// nixosPaths lays down SystemdBinDir, ServiceBinDir and PID 1's default
// PATH.
func (u upperLayer) nixosPaths(extra []string) error {
	sd, err := packageCommands("systemd")
	if err != nil {
		return err
	}
	if err := u.toolDir(SystemdBinDir, sd); err != nil {
		return err
	}
	svc, err := packageCommands(append(slices.Clone(servicePackages), extra...)...)
	if err != nil {
		return err
	}
	if err := u.toolDir(ServiceBinDir, svc); err != nil {
		return err
	}
	return u.writeFile("/etc/systemd/system.conf.d/panther-sandbox-path.conf",
		"# NixOS: PID 1's default PATH is systemd's own bin directory.\n[Manager]\nDefaultEnvironment=PATH="+SystemdBinDir+"\n", 0o644)
}
