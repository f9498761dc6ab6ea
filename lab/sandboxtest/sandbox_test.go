package sandboxtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/pantheros/panther/lab/sandbox"
	"github.com/pantheros/panther/lab/sandboxtest"
)

// dialSystemd connects go-systemd to the sandbox's system bus.
func dialSystemd(t *testing.T, s *sandboxtest.Sandbox) *sdbus.Conn {
	t.Helper()
	addr := s.BusAddress()
	conn, err := sdbus.NewConnection(func() (*godbus.Conn, error) {
		c, err := godbus.Dial(addr, godbus.WithContext(t.Context()))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

func TestBootSystemctlAndDBus(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{Name: "boot-test"})

	if got := s.Run(t, "systemctl", "is-system-running"); got != "running" {
		t.Errorf("is-system-running = %q, want running; failed units: %s", got,
			s.Run(t, "systemctl", "--failed", "--no-legend"))
	}
	if got := s.Run(t, "hostname"); got != "boot-test" {
		t.Errorf("hostname = %q, want boot-test", got)
	}
	if got := s.Run(t, "cat", "/proc/1/comm"); got != "systemd" {
		t.Errorf("PID 1 inside is %q, want systemd", got)
	}

	conn := dialSystemd(t, s)
	units, err := conn.ListUnitsContext(t.Context())
	if err != nil {
		t.Fatalf("ListUnits: %v", err)
	}
	active := map[string]string{}
	for _, u := range units {
		active[u.Name] = u.ActiveState
	}
	for _, want := range []string{"dbus.service", "multi-user.target", "systemd-journald.service"} {
		if active[want] != "active" {
			t.Errorf("unit %s is %q over D-Bus, want active", want, active[want])
		}
	}
	// Units the host enabled must not leak in.
	for _, unwanted := range []string{"nix-daemon.service", "postgresql.service", "systemd-sysctl.service"} {
		if st := active[unwanted]; st == "active" {
			t.Errorf("host unit %s is active in the sandbox", unwanted)
		}
	}
	prop, err := conn.SystemStateContext(t.Context())
	if err != nil {
		t.Fatalf("SystemState: %v", err)
	}
	if got := strings.Trim(prop.Value.String(), `"`); got != "running" {
		t.Errorf("SystemState over D-Bus = %q, want running", got)
	}
}

func TestTransientUnit(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{})
	out := s.Run(t, "systemd-run", "--wait", "--collect", "--quiet", "--unit=transient-test",
		"--property=StandardOutput=file:/var/lib/transient.out",
		"/bin/sh", "-c", "echo hello from $(/bin/cat /proc/1/comm)")
	if out != "" {
		t.Logf("systemd-run: %s", out)
	}
	b, err := os.ReadFile(s.Path("/var/lib/transient.out"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "hello from systemd" {
		t.Errorf("transient unit wrote %q", got)
	}
	// A failing transient unit reports its failure through systemd-run.
	if _, err := s.Exec(t.Context(), "systemd-run", "--wait", "--collect", "--quiet", "/bin/false"); err == nil {
		t.Error("systemd-run of /bin/false succeeded")
	}
}

// TestNixOSPaths: as on NixOS, a transient unit's PATH holds systemd's
// tools only, so a shell in it finds systemctl but not mv; a unit that sets
// sandbox.ServicePath finds what a NixOS service finds (coreutils,
// findutils, grep, sed, systemd, plus Options.ServicePackages); and
// HostDefaultPath turns the model off.
func TestNixOSPaths(t *testing.T) {
	t.Parallel()
	run := func(s *sandboxtest.Sandbox, argv ...string) (string, error) {
		out, err := s.Exec(t.Context(), append([]string{"systemd-run", "--wait", "--collect", "--quiet", "--pipe"}, argv...)...)
		return strings.TrimSpace(string(out)), err
	}
	nixos := sandboxtest.Boot(t, sandboxtest.Options{Name: "nixos", ServicePackages: []string{"git"}})
	out, err := run(nixos, "/usr/bin/env")
	if err != nil || !strings.Contains(out, "PATH="+sandbox.SystemdBinDir+"\n") {
		t.Errorf("transient unit environment: %v\n%s\nwant PATH=%s", err, out, sandbox.SystemdBinDir)
	}
	if out, err := run(nixos, "/bin/sh", "-c", "systemctl --version >/dev/null && echo found systemctl"); err != nil || out != "found systemctl" {
		t.Errorf("systemctl in a transient unit: %v %q", err, out)
	}
	if out, err := run(nixos, "/bin/sh", "-c", "mv --version"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("mv in a transient unit: %v %q, want not found", err, out)
	}
	for _, cmd := range []string{"mv", "find", "grep", "sed", "systemctl", "git"} {
		if out, err := run(nixos, "--setenv=PATH="+sandbox.ServicePath, "/bin/sh", "-c", "command -v "+cmd); err != nil {
			t.Errorf("%s with ServicePath: %v %q", cmd, err, out)
		}
	}
	if out, err := run(nixos, "--setenv=PATH="+sandbox.ServicePath, "/bin/sh", "-c", "command -v python3"); err == nil {
		t.Errorf("python3 found with ServicePath (%q): only the service's packages belong there", out)
	}

	debian := sandboxtest.Boot(t, sandboxtest.Options{Name: "debian", HostDefaultPath: true})
	if out, err := run(debian, "/bin/sh", "-c", "mv --version >/dev/null && echo found mv"); err != nil || out != "found mv" {
		t.Errorf("mv in a transient unit with HostDefaultPath: %v %q", err, out)
	}
}

// TestStage2BringsUpTheBootDefault: every boot activates the system the
// boot loader entry names and links /run/booted-system to it, before
// systemd starts the units the activation installed; changing the entry
// changes what the next boot brings up.
func TestStage2BringsUpTheBootDefault(t *testing.T) {
	t.Parallel()
	// activate <name>: a stand-in system whose activation installs a unit
	// wanted by multi-user.target and points /run/current-system at it.
	activate := func(name string) string {
		return "#!/bin/sh\nset -eu\ntop=/srv/" + name + "\n" +
			"printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' >/etc/systemd/system/" + name + ".service\n" +
			"mkdir -p /etc/systemd/system/multi-user.target.wants\n" +
			"ln -sfn ../" + name + ".service /etc/systemd/system/multi-user.target.wants/" + name + ".service\n" +
			"ln -sfn $top /run/current-system\n"
	}
	entry := func(name string) string { return "title " + name + "\noptions init=/srv/" + name + "/init\n" }
	s := sandboxtest.Boot(t, sandboxtest.Options{Files: map[string]string{
		"/srv/sys-a/activate": activate("sys-a"),
		"/srv/sys-b/activate": activate("sys-b"),
		sandbox.BootEntry:     entry("sys-a"),
	}})
	check := func(name string) {
		t.Helper()
		if got := s.Run(t, "readlink", "/run/current-system", "/run/booted-system"); got != "/srv/"+name+"\n/srv/"+name {
			t.Errorf("current and booted system: %q, want /srv/%s", got, name)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := s.WaitUnit(ctx, name+".service", "active"); err != nil {
			t.Errorf("the unit of %s: %v", name, err)
		}
	}
	check("sys-a")
	s.Run(t, "sh", "-c", "printf '"+strings.ReplaceAll(entry("sys-b"), "\n", "\\n")+"' >"+sandbox.BootEntry)
	s.Reboot(t)
	check("sys-b")
}

func TestUnitsFromOptions(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{
		Units: map[string]string{
			"enabled.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/bin/hello enabled\n",
			"manual.service":  "[Service]\nExecStart=/bin/sleep infinity\n",
		},
		Enable: []string{"enabled.service"},
		Files: map[string]string{
			"/usr/local/bin/hello": "#!/bin/sh\necho \"hello $1\" > /var/lib/hello.out\n",
			"/etc/panther/plain":   "data\n",
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.WaitUnit(ctx, "enabled.service", "active"); err != nil {
		t.Fatalf("%v\n%s", err, s.Journal(ctx, "enabled.service"))
	}
	if got := s.Run(t, "cat", "/var/lib/hello.out"); got != "hello enabled" {
		t.Errorf("enabled unit wrote %q", got)
	}
	if got := s.Run(t, "stat", "-c", "%a", "/etc/panther/plain", "/etc"); got != "644\n755" {
		t.Errorf("modes of a written file and its parent: %q, want 644 and 755", got)
	}
	if err := s.WaitUnit(ctx, "manual.service", "inactive"); err != nil {
		t.Fatal(err)
	}
	s.Run(t, "systemctl", "start", "--no-block", "manual.service")
	if err := s.WaitUnit(ctx, "manual.service", "active"); err != nil {
		t.Fatal(err)
	}
}

func TestOverlaySharesHostFilesButNotWrites(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{})

	// Files the host creates after boot (a freshly built test binary) are
	// visible inside through the lower layer.
	bin := filepath.Join(t.TempDir(), "late-tool")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho late tool\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := s.Run(t, bin); got != "late tool" {
		t.Errorf("host file created after boot: %q", got)
	}

	// Writes inside, even to /nix, stay in the upper layer.
	probe := "/nix/store/.sandboxtest-probe-" + strconv.Itoa(os.Getpid())
	s.Run(t, "sh", "-c", "mkdir -p /nix/store && echo inside > "+probe)
	if _, err := os.Stat(probe); !errors.Is(err, fs.ErrNotExist) {
		os.Remove(probe)
		t.Fatalf("write to %s inside reached the host (err=%v)", probe, err)
	}
	if _, err := os.Stat(filepath.Join(s.StateDir(), "upper", probe)); err != nil {
		t.Errorf("write inside not in the upper layer: %v", err)
	}

	if _, err := exec.LookPath("nix-store"); err != nil {
		t.Log("nix not installed: store isolation checked without nix")
		return
	}
	src := filepath.Join(t.TempDir(), "sandboxtest-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.WriteFile(src, []byte("added inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No build users: nix as root otherwise wants the nixbld group, which a
	// machine without /etc/nix/nix.conf may lack.
	add := s.Command(t.Context(), "nix-store", "--add", src)
	add.Env = append(add.Env, "NIX_CONFIG=build-users-group =")
	out, err := add.Output()
	if err != nil {
		t.Fatalf("nix-store --add: %v", err)
	}
	storePath := strings.TrimSpace(string(out))
	if !strings.HasPrefix(storePath, "/nix/store/") {
		t.Fatalf("nix-store --add printed %q", storePath)
	}
	if _, err := os.Stat(s.Path(storePath)); err != nil {
		t.Errorf("store path missing inside: %v", err)
	}
	if _, err := os.Stat(storePath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("store path %s added inside appeared on the host (err=%v)", storePath, err)
	}
}

// TestNixDBIsASnapshot: the sandbox's nix database is its own, loaded
// from the machine's before the first boot. A path the machine registers
// before the boot is valid inside; one it registers afterwards is not
// (its files show through the lower layer, its registration does not), and
// none of the machine's database files shows through (on the old overlay
// view the late path was valid inside until the sandbox's first write, and
// the machine's writes could tear the sandbox's copy).
func TestNixDBIsASnapshot(t *testing.T) {
	if _, err := exec.LookPath("nix-store"); err != nil {
		if os.Getenv("PANTHER_REQUIRE_INTEGRATION") != "" {
			t.Fatal("nix-store not installed")
		}
		t.Skip("nix not installed")
	}
	t.Parallel()
	add := func(name string) string {
		t.Helper()
		src := filepath.Join(t.TempDir(), name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := os.WriteFile(src, []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("nix-store", "--add", src)
		cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nix-store --add on the machine: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	valid := func(s *sandboxtest.Sandbox, p string) bool {
		cmd := s.Command(t.Context(), "nix-store", "--check-validity", p)
		cmd.Env = append(cmd.Env, "NIX_CONFIG=build-users-group =")
		return cmd.Run() == nil
	}
	early := add("sandboxtest-early")
	s := sandboxtest.Boot(t, sandboxtest.Options{})
	late := add("sandboxtest-late")
	if !valid(s, early) {
		t.Errorf("%s, registered on the machine before the boot, is not valid inside", early)
	}
	if valid(s, late) {
		t.Errorf("%s, registered on the machine after the boot, is valid inside: the sandbox reads the machine's database", late)
	}
	for _, f := range []string{"db.sqlite-wal", "db.sqlite-shm"} {
		if _, err := os.Stat(filepath.Join("/nix/var/nix/db", f)); err == nil {
			if _, err := os.Stat(s.Path("/nix/var/nix/db/" + f)); err == nil && !valid(s, early) {
				t.Errorf("the machine's %s shows through", f)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(s.StateDir(), "upper", "nix/var/nix/db/db.sqlite")); err != nil || fi.Size() == 0 {
		t.Errorf("no database of its own in the upper layer: %v", err)
	}
}

func TestExecCancelKillsCommand(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if _, err := s.Exec(ctx, "sleep", "1234"); err == nil {
		t.Fatal("Exec of sleep survived its context")
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Exec returned %v after its context ended", d)
	}
	if out, err := s.Exec(t.Context(), "pgrep", "-f", "sleep 1234"); err == nil {
		t.Errorf("sleep still runs inside: %s", out)
	}
}

func TestRebootKeepsDiskAndRenewsRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		reboot func(*sandboxtest.Sandbox, testing.TB)
	}{
		{name: "clean", reboot: (*sandboxtest.Sandbox).Reboot},
		{name: "crash", reboot: (*sandboxtest.Sandbox).Crash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := sandboxtest.Boot(t, sandboxtest.Options{Name: "reboot-" + tc.name})
			s.Run(t, "sh", "-c", "mkdir -p /var/lib/panther && echo kept > /var/lib/panther/state && echo gone > /run/volatile")
			oldPID := s.PID()
			oldStart := s.Run(t, "systemctl", "show", "--property=ActiveEnterTimestampMonotonic", "--value", "dbus.service")

			tc.reboot(s, t)

			if s.PID() == oldPID {
				t.Errorf("PID unchanged across reboot: %d", oldPID)
			}
			if got := s.Run(t, "cat", "/var/lib/panther/state"); got != "kept" {
				t.Errorf("/var/lib file after reboot = %q, want kept", got)
			}
			if _, err := os.Stat(s.Path("/run/volatile")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("/run/volatile survived the reboot (err=%v)", err)
			}
			newStart := s.Run(t, "systemctl", "show", "--property=ActiveEnterTimestampMonotonic", "--value", "dbus.service")
			if newStart == oldStart {
				t.Errorf("dbus.service was not restarted (%s)", newStart)
			}
			if got := s.Run(t, "systemctl", "is-system-running"); got != "running" {
				t.Errorf("after reboot: %s", got)
			}
		})
	}
}

func TestNetNS(t *testing.T) {
	t.Parallel()
	a := sandboxtest.Boot(t, sandboxtest.Options{Name: "net-a", NetNS: true})
	b := sandboxtest.Boot(t, sandboxtest.Options{Name: "net-b", NetNS: true})
	if a.IP() == b.IP() || a.HostIP() == b.HostIP() {
		t.Fatalf("sandboxes share addresses: %v/%v and %v/%v", a.IP(), a.HostIP(), b.IP(), b.HostIP())
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(a.HostIP().String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go echoServer(ln)
	port := ln.Addr().(*net.TCPAddr).Port

	// One TCP round trip from inside to the host end of the veth.
	roundTrip := func(s *sandboxtest.Sandbox, host string) error {
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && echo ping >&3 && read -r reply <&3 && echo "$reply"`, host, port)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		out, err := s.Exec(ctx, "timeout", "2", "bash", "-c", script)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(out)); got != "echo: ping" {
			return fmt.Errorf("reply %q", got)
		}
		return nil
	}
	if err := roundTrip(a, a.HostIP().String()); err != nil {
		t.Fatalf("sandbox -> host over veth: %v", err)
	}
	// Its own address, not the host's, is what the host sees.
	if got := a.Run(t, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, a.IP().String()) {
		t.Errorf("eth0 inside: %s, want %v", got, a.IP())
	}
	// b reaches a's host end too, through its own default route.
	if err := roundTrip(b, a.HostIP().String()); err != nil {
		t.Fatalf("second sandbox -> host: %v", err)
	}

	// The host's own interface addresses are reachable too (where a test
	// runs its in-process tailnet control server).
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { all.Close() })
	go echoServer(all)
	if hostAddr := primaryHostIP(t); hostAddr != "" {
		port := all.Addr().(*net.TCPAddr).Port
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && echo ping >&3 && read -r reply <&3 && echo "$reply"`, hostAddr, port)
		if got := a.Run(t, "timeout", "5", "bash", "-c", script); got != "echo: ping" {
			t.Errorf("sandbox -> host address %s: %q", hostAddr, got)
		}
	}

	// The host reaches a service inside on the sandbox's address.
	a.Run(t, "systemd-run", "--unit=web", "--property=WorkingDirectory=/etc",
		"python3", "-m", "http.server", "--bind", a.IP().String(), "8080")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.WaitUnit(ctx, "web.service", "active"); err != nil {
		t.Fatal(err)
	}
	webURL := "http://" + net.JoinHostPort(a.IP().String(), "8080") + "/hostname"
	var body string
	for {
		resp, err := http.Get(webURL)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = strings.TrimSpace(string(b))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("host -> sandbox web server: %v\n%s", err, a.Journal(t.Context(), "web.service"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != "net-a" {
		t.Errorf("/etc/hostname served from inside: %q", body)
	}

	a.CutNetwork(t)
	if err := roundTrip(a, a.HostIP().String()); err == nil {
		t.Fatal("round trip succeeded with the network cut")
	}
	if err := roundTrip(b, a.HostIP().String()); err != nil {
		t.Errorf("cutting a disturbed b: %v", err)
	}
	a.RestoreNetwork(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := roundTrip(a, a.HostIP().String())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after RestoreNetwork: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The addresses survive a reboot.
	ip := a.IP()
	a.Reboot(t)
	if a.IP() != ip {
		t.Errorf("IP changed across reboot: %v -> %v", ip, a.IP())
	}
	if err := roundTrip(a, a.HostIP().String()); err != nil {
		t.Errorf("after reboot: %v", err)
	}
}

// primaryHostIP returns an IPv4 address of the host's first non-loopback,
// non-sandbox interface, or "" when there is none.
func primaryHostIP(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 || strings.HasPrefix(ifc.Name, "pst") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

// echoServer answers every line with "echo: " and the line.
func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "echo: %s\n", sc.Text())
			}
		}()
	}
}

func TestStopLeavesNothingAndSparesHostTmp(t *testing.T) {
	t.Parallel()
	marker, err := os.CreateTemp("", "sandboxtest-marker-*")
	if err != nil {
		t.Fatal(err)
	}
	marker.WriteString("untouched")
	marker.Close()
	t.Cleanup(func() { os.Remove(marker.Name()) })

	state := t.TempDir()
	s := sandboxtest.Boot(t, sandboxtest.Options{Name: "stop-test", StateDir: state, NetNS: true})
	pid := s.PID()
	// Inside, systemd-tmpfiles runs with the host's /tmp as its lower layer.
	s.Run(t, "systemd-tmpfiles", "--clean", "--remove")
	s.Run(t, "sh", "-c", "rm -f "+marker.Name())
	cgroups := sandboxCgroups(t, pid)
	hostIf := hostVeth(t, s)

	s.Stop()
	s.Stop() // idempotent

	b, err := os.ReadFile(marker.Name())
	if err != nil || string(b) != "untouched" {
		t.Errorf("host /tmp marker after the sandbox: %q, %v", b, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sandbox PID 1 (%d) still exists: %v", pid, err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), state) {
		t.Errorf("host mountinfo mentions the sandbox state dir %s", state)
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", cg, err)
		}
	}
	if _, err := net.InterfaceByName(hostIf); err == nil {
		t.Errorf("veth %s left behind", hostIf)
	}
	if _, err := s.Exec(t.Context(), "true"); !errors.Is(err, sandboxtest.ErrNotRunning) {
		t.Errorf("Exec after Stop: %v, want ErrNotRunning", err)
	}
}

// sandboxCgroups returns the host paths of the cgroup2 directories holding
// pid (the sandbox's own cgroup root).
func sandboxCgroups(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			// Read from the host, the path is relative to the host's root.
			for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
					out = append(out, filepath.Join(root, filepath.Dir(p)))
					break
				}
			}
		}
	}
	if len(out) == 0 || !strings.Contains(out[0], "panther-sandboxtest-") {
		t.Fatalf("sandbox cgroup not found in %s", b)
	}
	return out
}

// hostVeth finds the host end of the sandbox's veth pair by its address.
func hostVeth(t *testing.T, s *sandboxtest.Sandbox) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		if slices.ContainsFunc(addrs, func(a net.Addr) bool { return strings.HasPrefix(a.String(), s.HostIP().String()+"/") }) {
			return ifc.Name
		}
	}
	t.Fatalf("no host interface has %v", s.HostIP())
	return ""
}

// TestSandboxDiesWithTestBinary kills a test process that booted a sandbox,
// as a test timeout would, and expects the sandbox to go with it.
func TestSandboxDiesWithTestBinary(t *testing.T) {
	if os.Getenv("SANDBOXTEST_HELPER") == "boot-and-hang" {
		s := sandboxtest.Boot(t, sandboxtest.Options{Name: "orphan"})
		fmt.Printf("PID=%d\n", s.PID())
		time.Sleep(time.Minute)
		return
	}
	sandboxtest.Require(t, false)
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSandboxDiesWithTestBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "SANDBOXTEST_HELPER=boot-and-hang")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := 0
	sc := bufio.NewScanner(out)
	for pid == 0 && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PID="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not boot a sandbox")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("sandbox systemd (pid %d) outlived its test binary", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRebootFromInside: `systemctl reboot` inside a sandbox ends its
// systemd (reboot(2) in a PID namespace); the sandbox boots again on the
// same disk, with a fresh /run, and stage 2 brings up the boot default.
// Before, the sandbox just stayed down.
func TestRebootFromInside(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{Name: "inside", NetNS: true})
	s.Run(t, "sh", "-c", "echo kept >/var/lib/marker && echo gone >/run/marker")
	pid := s.PID()
	boots := s.RebootFromInside(t)
	s.WaitBoot(t, boots, time.Minute)
	if s.PID() == pid || s.Boots() != boots+1 {
		t.Errorf("PID %d (was %d), boots %d (was %d): want a new boot", s.PID(), pid, s.Boots(), boots)
	}
	if got := s.Run(t, "cat", "/var/lib/marker"); got != "kept" {
		t.Errorf("/var/lib/marker after the reboot: %q", got)
	}
	if _, err := s.Exec(t.Context(), "test", "-e", "/run/marker"); err == nil {
		t.Error("/run/marker survived the reboot")
	}
	// The network is back too.
	s.Run(t, "ip", "route", "get", s.HostIP().String())
	// And again: the new boot is watched as the first one was.
	boots = s.RebootFromInside(t)
	s.WaitBoot(t, boots, time.Minute)
}

// TestPowerOffFromInside: `systemctl poweroff` inside leaves the sandbox
// down, and WaitBoot says so; Reboot brings it back.
func TestPowerOffFromInside(t *testing.T) {
	t.Parallel()
	s := sandboxtest.Boot(t, sandboxtest.Options{Name: "poweroff"})
	boots := s.Boots()
	s.Run(t, "systemctl", "poweroff", "--no-block")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := s.Core().WaitBoot(ctx, boots)
	if !errors.Is(err, sandbox.ErrPoweredOff) {
		t.Fatalf("WaitBoot after poweroff: %v, want ErrPoweredOff", err)
	}
	s.Reboot(t)
	s.Run(t, "true")
}
