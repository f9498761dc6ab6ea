package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// maskedUnits never start in a sandbox: they would touch the host kernel
// (modules, sysctl, binfmt, clock), mount kernel filesystems nobody needs,
// fail without a console and leave the system degraded, or only lengthen the
// boot (users, utmp and logins are the host's business).
func maskedUnits() []string {
	return []string{
		"console-getty.service",
		"dev-hugepages.mount",
		"kmod-static-nodes.service",
		"proc-sys-fs-binfmt_misc.automount",
		"sys-fs-fuse-connections.mount",
		"sys-kernel-config.mount",
		"sys-kernel-debug.mount",
		"sys-kernel-tracing.mount",
		"systemd-binfmt.service",
		"systemd-firstboot.service",
		"systemd-journal-flush.service",
		"systemd-logind.service",
		"systemd-modules-load.service",
		"systemd-pstore.service",
		"systemd-sysctl.service",
		"systemd-sysusers.service",
		"systemd-timesyncd.service",
		"systemd-update-utmp.service",
		"systemd-update-utmp-runlevel.service",
		"systemd-user-sessions.service",
		"tmp.mount",
	}
}

// upperLayer writes files into an overlay upper directory before boot, so
// they appear at their path inside the sandbox. Parent directories copy the
// mode and owner of the host directory they shadow, and symlinked host
// directories (/lib -> usr/lib) are followed so they are never shadowed.
type upperLayer struct {
	dir string
}

// prepare lays down the sandbox defaults and the caller's files and units.
// net is nil without a network namespace.
func (u upperLayer) prepare(opts Options, net *network) error {
	if err := u.writeFile("/etc/hostname", opts.Name+"\n", 0o644); err != nil {
		return err
	}
	if err := u.snapshotNixDB(); err != nil {
		return err
	}
	if net != nil {
		if err := u.isolateNames(opts.Name, net); err != nil {
			return err
		}
	}
	// A machine ID of its own, kept across reboots like a real host's.
	if _, err := os.Lstat(filepath.Join(u.dir, "etc/machine-id")); errors.Is(err, fs.ErrNotExist) {
		if err := u.writeFile("/etc/machine-id", randomHex(16)+"\n", 0o444); err != nil {
			return err
		}
	}
	// The rule that empties /tmp at boot is what makes a systemd on the
	// host's own root dangerous; it has no business here either.
	if err := u.symlink("/dev/null", "/etc/tmpfiles.d/tmp.conf"); err != nil {
		return err
	}
	if err := u.writeFile("/etc/systemd/journald.conf.d/panther-sandbox.conf", "[Journal]\nStorage=volatile\n", 0o644); err != nil {
		return err
	}
	for _, unit := range maskedUnits() {
		if err := u.symlink("/dev/null", "/etc/systemd/system/"+unit); err != nil {
			return err
		}
	}
	if err := u.symlink("/lib/systemd/system/multi-user.target", "/etc/systemd/system/default.target"); err != nil {
		return err
	}
	if !opts.HostDefaultPath {
		if err := u.nixosPaths(opts.ServicePackages); err != nil {
			return err
		}
	}
	if err := u.hideHostWants(); err != nil {
		return err
	}
	if err := u.maskGenerators(); err != nil {
		return err
	}
	for name, content := range opts.Units {
		if strings.Contains(name, "/") {
			return fmt.Errorf("unit name %q contains a slash", name)
		}
		if err := u.writeFile("/etc/systemd/system/"+name, content, 0o644); err != nil {
			return err
		}
	}
	for _, name := range opts.Enable {
		target, err := unitFile(name, opts.Units)
		if err != nil {
			return err
		}
		if err := u.symlink(target, "/etc/systemd/system/multi-user.target.wants/"+name); err != nil {
			return err
		}
	}
	for p, content := range opts.Files {
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := u.writeFile(p, content, mode); err != nil {
			return err
		}
	}
	return nil
}

// isolateNames makes name lookups in a network namespace answer at once:
// the sandbox's own name and address resolve from /etc/hosts, and DNS points
// at the sandbox's loopback, where nothing listens, instead of a host
// nameserver it cannot reach (reverse lookups such as Python's getfqdn
// would otherwise hang for many seconds).
func (u upperLayer) isolateNames(name string, net *network) error {
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read host /etc/hosts: %w", err)
	}
	hosts = append(hosts, fmt.Sprintf("\n# panther sandbox\n%s %s\n%s sandbox-host\n", net.guest, name, net.host)...)
	if err := u.writeFile("/etc/hosts", string(hosts), 0o644); err != nil {
		return err
	}
	return u.writeFile("/etc/resolv.conf", "# panther sandbox: no DNS inside a sandbox network namespace\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n", 0o644)
}

// hideHostWants makes every host /etc/systemd/system/*.wants and *.requires
// directory opaque in the upper layer, so units the host enabled (its
// sshd, nix-daemon, timers, ...) do not start in the sandbox.
func (u upperLayer) hideHostWants() error {
	entries, err := os.ReadDir("/etc/systemd/system")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list host units: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !(strings.HasSuffix(e.Name(), ".wants") || strings.HasSuffix(e.Name(), ".requires")) {
			continue
		}
		rel := "/etc/systemd/system/" + e.Name()
		if err := u.mkdirAll(rel); err != nil {
			return err
		}
		if err := syscall.Setxattr(filepath.Join(u.dir, rel), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("make %s opaque: %w", rel, err)
		}
	}
	return nil
}

// maskGenerators disables every unit generator installed on the host: they
// would turn the host's fstab, SysV scripts and database clusters into units,
// and running them costs boot time.
func (u upperLayer) maskGenerators() error {
	for _, dir := range []string{"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators"} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list host generators: %w", err)
		}
		for _, e := range entries {
			if err := u.symlink("/dev/null", "/etc/systemd/system-generators/"+e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// unitFile returns the path inside the sandbox of the file that defines
// unit: a unit from Options.Units, else one installed on the host.
// Instances (foo@bar.service) resolve to their template.
func unitFile(unit string, units map[string]string) (string, error) {
	if _, ok := units[unit]; ok {
		return "/etc/systemd/system/" + unit, nil
	}
	file := unit
	if at := strings.Index(unit, "@"); at >= 0 {
		if dot := strings.LastIndex(unit, "."); dot > at {
			template := unit[:at+1] + unit[dot:]
			if _, ok := units[template]; ok {
				return "/etc/systemd/system/" + template, nil
			}
			file = template
		}
	}
	for _, dir := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dir, file)); err == nil {
			return filepath.Join(dir, file), nil
		}
	}
	return "", fmt.Errorf("enable %s: no unit file in Options.Units or on the host", unit)
}

// writeFile writes content at path p inside the sandbox.
func (u upperLayer) writeFile(p, content string, mode fs.FileMode) error {
	host, err := u.resolve(p)
	if err != nil {
		return err
	}
	if err := u.mkdirAll(filepath.Dir(host)); err != nil {
		return err
	}
	full := filepath.Join(u.dir, host)
	_ = os.Remove(full) // a previous boot's copy may be read-only
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return os.Chmod(full, mode) // undo the umask
}

// symlink creates (or replaces) a symlink at path p inside the sandbox.
func (u upperLayer) symlink(target, p string) error {
	host, err := u.resolve(p)
	if err != nil {
		return err
	}
	if err := u.mkdirAll(filepath.Dir(host)); err != nil {
		return err
	}
	full := filepath.Join(u.dir, host)
	_ = os.Remove(full)
	if err := os.Symlink(target, full); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	return nil
}

// resolve follows host symlinks in the directories of p, which is what the
// overlay will do since the host's / is its lower layer. The final element
// is kept, so a file replaces a host symlink of the same name.
func (u upperLayer) resolve(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q inside the sandbox must be absolute", p)
	}
	p = filepath.Clean(p)
	dir, base := filepath.Dir(p), filepath.Base(p)
	existing, rest := dir, ""
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = filepath.Dir(existing)
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", existing, err)
	}
	return filepath.Join(real, rest, base), nil
}

// mkdirAll creates dir (a path inside the sandbox, symlinks resolved) in the
// upper layer, giving new directories the mode and owner of the host
// directories they shadow: a 0700 /etc in the upper layer would be a 0700
// /etc inside.
func (u upperLayer) mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if dir == "/" {
		return nil
	}
	if err := u.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	full := filepath.Join(u.dir, dir)
	if _, err := os.Lstat(full); err == nil {
		return nil
	}
	mode, uid, gid := fs.FileMode(0o755), 0, 0
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		mode = fi.Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetgid)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	if err := os.Mkdir(full, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Lchown(full, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	if err := os.Chmod(full, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// nixDBDir is the machine's nix database (SQLite in WAL mode).
const nixDBDir = "/nix/var/nix/db"

// snapshotNixDB gives the sandbox a nix database of its own before its
// first boot, loaded from one consistent dump of the machine's (`nix-store
// --dump-db` reads it in one transaction) into an opaque directory of the
// upper layer. Left to the overlay, db.sqlite, its -wal and -shm were
// copied up one by one at the sandbox's first write of each while nix on
// the machine (other tests building) kept writing the lower files: the
// sandbox's nix then read a mix of two states ("database disk image is
// malformed", or a source path registered with another path's references).
// The sandbox sees the machine's store paths registered until this moment;
// later ones are its own business, as on a real host. Without nix on the
// machine there is nothing to snapshot.
func (u upperLayer) snapshotNixDB() error {
	dst := filepath.Join(u.dir, nixDBDir)
	if _, err := os.Lstat(dst); err == nil {
		return nil // taken before an earlier boot: the sandbox's own since
	}
	if _, err := os.Stat(filepath.Join(nixDBDir, "db.sqlite")); err != nil {
		return nil
	}
	nixStore, err := exec.LookPath("nix-store")
	if err != nil {
		return nil
	}
	// Into a staging state directory first, so that a snapshot cut short
	// is taken again at the next boot.
	stage := filepath.Join(u.dir, "nix/var/panther-db-snapshot")
	_ = os.RemoveAll(stage)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return fmt.Errorf("snapshot the nix database: %w", err)
	}
	defer os.RemoveAll(stage)
	env := nixEnv(os.Environ())
	dump := exec.Command(nixStore, "--dump-db")
	dump.Env = env
	load := exec.Command(nixStore, "--load-db")
	load.Env = append(env, "NIX_STATE_DIR="+stage)
	pipe, err := dump.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	var dumpErr, loadErr strings.Builder
	dump.Stderr, load.Stderr = &dumpErr, &loadErr
	if err := dump.Start(); err != nil {
		return fmt.Errorf("snapshot the nix database: %w", err)
	}
	lerr := load.Run()
	derr := dump.Wait()
	if derr != nil {
		return fmt.Errorf("snapshot the nix database: nix-store --dump-db: %v: %s", derr, strings.TrimSpace(dumpErr.String()))
	}
	if lerr != nil {
		return fmt.Errorf("snapshot the nix database: nix-store --load-db: %v: %s", lerr, strings.TrimSpace(loadErr.String()))
	}
	if err := u.mkdirAll(filepath.Dir(nixDBDir)); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(stage, "db"), dst); err != nil {
		return fmt.Errorf("snapshot the nix database: %w", err)
	}
	// Opaque: none of the machine's db files (its -wal, -shm) shows through.
	if err := syscall.Setxattr(dst, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("make %s opaque: %w", nixDBDir, err)
	}
	return nil
}

// nixEnv is environ for the nix-store calls above: a machine without a
// nixbld group (Debian's nix-bin as root) needs build-users-group unset.
func nixEnv(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	conf := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NIX_CONFIG="); ok {
			conf = v + "\n"
			continue
		}
		out = append(out, kv)
	}
	return append(out, "NIX_CONFIG="+conf+"build-users-group =")
}
