package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pantheros/panther/controller/client"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/fleettest"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// agentPort is the agent's default tailnet port (agent/config.DefaultPort).
const agentPort = 7443

// TestTrust checks who the agent listens to, over the real binaries: what
// pantherctl shows without deploying, every way a signed request can be
// wrong, a tailnet peer without the controller tag, that the agent listens
// on no host interface, and that a controller that vanishes mid-stream is
// noticed. The subtests share one host and run in order; refusals come
// before the one test that leaves a deployment awaiting confirmation.
func TestTrust(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Hosts: map[string]string{"alpha": "good"}})
	alpha := f.Hosts["alpha"]
	// A confirmed first deployment gives status a system and a generation
	// to show, and the refusals a current system they must leave alone.
	f.MustCtl(0, "deploy", "alpha", "--yes", "--flake", f.Flake)
	if !strings.Contains(alpha.CurrentSystem(t), "nixos-system-alpha") {
		t.Fatalf("first deploy left no system:\n%s", alpha.AgentJournal())
	}

	signer := client.Signer{Key: f.Key(t)}
	ctl := f.Tailnet.Node(t, "ctl2", "tag:panther-controller")
	src := packFlake(t, f.Flake)
	{
		conn := dial(t, ctl, "alpha")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := conn.Upload(ctx, signer, src.Digest, openFile(t, src.path)); err != nil {
			t.Fatalf("upload: %v", err)
		}
		cancel()
	}
	// intent is a complete, valid intent for alpha from the uploaded
	// source: whatever a case breaks, the rest would be accepted.
	intent := func(a agentv1.Action) *agentv1.Intent {
		return &agentv1.Intent{
			Host: "alpha", Action: a, DeploymentId: client.NewDeploymentID(time.Now()),
			SourceDigest: src.Digest, SourceSubdir: src.Subdir, FlakeAttr: "alpha",
		}
	}

	t.Run("StatusThroughBinary", func(t *testing.T) {
		r := f.MustCtl(0, "status", "alpha")
		rows := statusRows(r.Stdout)
		if !strings.HasPrefix(rows["agent"], "test (up ") {
			t.Errorf("agent row %q lacks the version and uptime\n%s", rows["agent"], r)
		}
		if cur := alpha.CurrentSystem(t); rows["system"] != cur {
			t.Errorf("system row %q, want %q\n%s", rows["system"], cur, r)
		}
		if !strings.HasPrefix(rows["generation"], "1 ") {
			t.Errorf("generation row %q, want generation 1\n%s", rows["generation"], r)
		}
		if d, err := time.ParseDuration(rows["uptime"]); err != nil || d <= 0 {
			t.Errorf("uptime row %q is not a positive duration (%v)\n%s", rows["uptime"], err, r)
		}
		if !strings.Contains(rows["last deploy"], "confirmed") {
			t.Errorf("last deploy row %q\n%s", rows["last deploy"], r)
		}
	})

	t.Run("LocalCommands", func(t *testing.T) {
		testLocalCommands(t, f)
	})

	t.Run("NoPortOnHostInterfaces", func(t *testing.T) {
		testNoHostPort(t, alpha)
	})

	t.Run("UntaggedPeerDenied", func(t *testing.T) {
		intruder := f.Tailnet.Node(t, "intruder")
		conn := dial(t, intruder, "alpha")
		before := snapshot(t, alpha)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()

		_, err := conn.API.Status(ctx, &agentv1.StatusRequest{})
		wantStatus(t, "Status from an untagged peer", err, codes.PermissionDenied, "not allowed")

		// A perfectly signed intent does not help a peer without the tag.
		env := sign(t, signer, intent(agentv1.Action_ACTION_BUILD))
		_, err = callDeploy(ctx, conn.API, env)
		wantStatus(t, "Deploy from an untagged peer", err, codes.PermissionDenied, "not allowed")
		before.unchanged(t, "after the intruder")

		j := alpha.AgentJournal()
		if n := countLines(j, "rpc denied", "peer=intruder."); n < 2 {
			t.Errorf("agent journal has %d audit lines denying the intruder, want 2 (Status, Deploy):\n%s", n, j)
		}
		// The tag check ran before the signature was looked at, so the
		// nonce is unspent: the same envelope from the controller works.
		evs, err := callDeploy(ctx, dial(t, ctl, "alpha").API, env)
		if err != nil || lastOutcome(evs) != agentv1.Outcome_OUTCOME_BUILT {
			t.Errorf("the intruder's envelope sent by the controller: %v, outcome %v", err, lastOutcome(evs))
		}
	})

	t.Run("RefusalMatrix", func(t *testing.T) {
		conn := dial(t, ctl, "alpha")
		stranger, err := signing.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		resign := func(env *agentv1.SignedEnvelope) {
			env.KeyId, env.Signature = signing.Sign(signer.Key, env.Intent)
		}
		tests := []struct {
			name string
			rpc  string // Deploy (default), Rollback or Confirm
			env  func() *agentv1.SignedEnvelope
			code codes.Code
			msg  string
		}{
			{name: "unknown key", code: codes.Unauthenticated, msg: "does not trust",
				env: func() *agentv1.SignedEnvelope {
					return sign(t, client.Signer{Key: stranger}, intent(agentv1.Action_ACTION_SWITCH))
				}},
			{name: "bad signature (one bit flipped)", code: codes.Unauthenticated, msg: "does not verify",
				env: func() *agentv1.SignedEnvelope {
					env := sign(t, signer, intent(agentv1.Action_ACTION_SWITCH))
					env.Signature[17] ^= 0x04
					return env
				}},
			{name: "intent changed after signing (one bit flipped)", code: codes.Unauthenticated, msg: "does not verify",
				env: func() *agentv1.SignedEnvelope {
					env := sign(t, signer, intent(agentv1.Action_ACTION_SWITCH))
					env.Intent[len(env.Intent)-1] ^= 0x01
					return env
				}},
			{name: "intent for another host", code: codes.PermissionDenied, msg: "another host",
				env: func() *agentv1.SignedEnvelope {
					in := intent(agentv1.Action_ACTION_SWITCH)
					in.Host = "beta"
					return sign(t, signer, in)
				}},
			{name: "expired beyond the skew", code: codes.PermissionDenied, msg: "expired",
				env: func() *agentv1.SignedEnvelope {
					in := intent(agentv1.Action_ACTION_SWITCH)
					in.IssuedAt, in.ExpiresAt = timestamppb.New(now.Add(-5*time.Minute)), timestamppb.New(now.Add(-45*time.Second))
					return sign(t, signer, in)
				}},
			{name: "not yet valid beyond the skew", code: codes.PermissionDenied, msg: "not valid yet",
				env: func() *agentv1.SignedEnvelope {
					in := intent(agentv1.Action_ACTION_SWITCH)
					in.IssuedAt, in.ExpiresAt = timestamppb.New(now.Add(45*time.Second)), timestamppb.New(now.Add(5*time.Minute))
					return sign(t, signer, in)
				}},
			{name: "lifetime over the maximum", code: codes.PermissionDenied, msg: "lifetime",
				env: func() *agentv1.SignedEnvelope {
					in := intent(agentv1.Action_ACTION_SWITCH)
					in.IssuedAt, in.ExpiresAt = timestamppb.New(now), timestamppb.New(now.Add(2*time.Hour))
					return sign(t, signer, in)
				}},
			{name: "upload intent sent to Deploy", code: codes.PermissionDenied, msg: "another action",
				env: func() *agentv1.SignedEnvelope { return sign(t, signer, intent(agentv1.Action_ACTION_UPLOAD)) }},
			{name: "switch intent sent to Rollback", rpc: "Rollback", code: codes.PermissionDenied, msg: "another action",
				env: func() *agentv1.SignedEnvelope { return sign(t, signer, intent(agentv1.Action_ACTION_SWITCH)) }},
			{name: "switch intent sent to Confirm", rpc: "Confirm", code: codes.PermissionDenied, msg: "another action",
				env: func() *agentv1.SignedEnvelope { return sign(t, signer, intent(agentv1.Action_ACTION_SWITCH)) }},
			{name: "no envelope", code: codes.InvalidArgument, msg: "no signed envelope",
				env: func() *agentv1.SignedEnvelope { return nil }},
			{name: "garbage intent bytes, validly signed", code: codes.InvalidArgument, msg: "does not decode",
				env: func() *agentv1.SignedEnvelope {
					env := &agentv1.SignedEnvelope{Intent: []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")}
					resign(env)
					return env
				}},
			{name: "short signature", code: codes.InvalidArgument, msg: "malformed",
				env: func() *agentv1.SignedEnvelope {
					env := sign(t, signer, intent(agentv1.Action_ACTION_SWITCH))
					env.Signature = env.Signature[:32]
					return env
				}},
			{name: "no key id", code: codes.InvalidArgument, msg: "malformed",
				env: func() *agentv1.SignedEnvelope {
					env := sign(t, signer, intent(agentv1.Action_ACTION_SWITCH))
					env.KeyId = ""
					return env
				}},
			{name: "short nonce", code: codes.InvalidArgument, msg: "nonce is too short",
				env: func() *agentv1.SignedEnvelope {
					in := intent(agentv1.Action_ACTION_SWITCH)
					in.Nonce = []byte("12345678")
					return sign(t, signer, in)
				}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, alpha)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				var err error
				switch tc.rpc {
				case "", "Deploy":
					var evs []*agentv1.DeployEvent
					evs, err = callDeploy(ctx, conn.API, tc.env())
					if len(evs) > 0 {
						t.Errorf("the agent accepted the intent and streamed %d events (outcome %v)", len(evs), lastOutcome(evs))
					}
				case "Rollback":
					err = callRollback(ctx, conn.API, tc.env())
				case "Confirm":
					_, err = conn.API.Confirm(ctx, &agentv1.ConfirmRequest{Envelope: tc.env()})
				}
				wantStatus(t, tc.name, err, tc.code, tc.msg)
				before.unchanged(t, tc.name)
			})
		}
	})

	t.Run("ReplayAcrossRestart", func(t *testing.T) {
		conn := dial(t, ctl, "alpha")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		in := intent(agentv1.Action_ACTION_BUILD)
		env := sign(t, signer, in)
		evs, err := callDeploy(ctx, conn.API, env)
		if err != nil || lastOutcome(evs) != agentv1.Outcome_OUTCOME_BUILT {
			t.Fatalf("the original build intent: %v, outcome %v", err, lastOutcome(evs))
		}
		if !slices.Contains(alpha.Deployments(t), in.DeploymentId) {
			t.Fatalf("no journal record for the accepted build %s", in.DeploymentId)
		}
		before := snapshot(t, alpha)
		_, err = callDeploy(ctx, conn.API, env)
		wantStatus(t, "replayed envelope", err, codes.PermissionDenied, "seen before")
		before.unchanged(t, "after the replay")

		restarted := time.Now()
		alpha.RestartAgent(t)
		conn = waitServing(t, ctl, "alpha", restarted)
		t.Logf("agent serves again %v after the restart began", time.Since(restarted).Round(time.Millisecond))

		_, err = callDeploy(ctx, conn.API, env)
		wantStatus(t, "envelope replayed after an agent restart", err, codes.PermissionDenied, "seen before")
		before.unchanged(t, "after the replay across the restart")
	})

	t.Run("VanishedControllerNoticed", func(t *testing.T) {
		// A deployment awaiting confirmation keeps Logs --follow open:
		// the agent has nothing to send until it is confirmed or rolled
		// back, so only the transport can tell it the controller left.
		f.SetVariant("alpha", "good-v2")
		known := alpha.Deployments(t)
		r := f.Ctl("deploy", "alpha", "--yes", "--no-confirm", "--detach", "--confirm-timeout", "5m", "--flake", f.Flake)
		if !strings.Contains(r.Stdout+r.Stderr, "not confirming") {
			t.Fatalf("deploy --no-confirm did not leave the deployment awaiting:\n%s", r)
		}
		var id string
		for _, d := range alpha.Deployments(t) {
			if !slices.Contains(known, d) {
				id = d
			}
		}
		if id == "" {
			t.Fatalf("no new deployment on alpha after deploy --no-confirm:\n%s", r)
		}

		t.Run("NodeClosed", func(t *testing.T) {
			node := f.Tailnet.Node(t, "ctl3", "tag:panther-controller")
			conn := dial(t, node, "alpha")
			st, err := conn.API.Logs(context.Background(), &agentv1.LogsRequest{DeploymentId: id, Follow: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("first Logs message: %v", err)
			}
			gone := time.Now()
			if err := node.Close(); err != nil {
				t.Errorf("closing the node: %v", err)
			}
			t.Logf("node.Close took %v", time.Since(gone).Round(time.Millisecond))
			ended, line := waitStreamEnded(t, alpha, "Logs", `peer="ctl3.`, gone)
			noticed := ended.Sub(gone)
			t.Logf("agent ended the stream %v after the node closed: %s", noticed.Round(time.Millisecond), line)
			if noticed > 5*time.Second {
				t.Errorf("agent noticed the vanished controller after %v, want within 5s", noticed)
			}
		})

		t.Run("ProcessKilled", func(t *testing.T) {
			// SIGKILL leaves no chance to say goodbye: no FIN, no GOAWAY,
			// only silence on the tailnet.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, f.Bin.Ctl, "logs", "alpha", id, "--follow")
			cmd.Dir, cmd.Env = f.Dir, f.Env()
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			first := make(chan error, 1)
			go func() {
				_, err := bufio.NewReader(out).ReadString('\n')
				first <- err
				io.Copy(io.Discard, out)
			}()
			select {
			case err := <-first:
				if err != nil {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("pantherctl logs --follow printed nothing: %v\n%s", err, stderr.String())
				}
			case <-ctx.Done():
				t.Fatalf("pantherctl logs --follow printed nothing in time\n%s", stderr.String())
			}
			// pantherctl's own node listens on no interface of the
			// operator's machine either.
			if out, err := exec.Command("ss", "-Hltnp").Output(); err != nil {
				t.Errorf("ss: %v", err)
			} else if pid := fmt.Sprintf("pid=%d,", cmd.Process.Pid); strings.Contains(string(out), pid) {
				t.Errorf("pantherctl listens on the machine's interfaces:\n%s", out)
			}
			gone := time.Now()
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			ended, line := waitStreamEnded(t, alpha, "Logs", `peer="ctl.`, gone)
			noticed := ended.Sub(gone)
			t.Logf("agent ended the stream %v after pantherctl was killed: %s", noticed.Round(time.Millisecond), line)
			if noticed > 5*time.Second {
				t.Errorf("agent noticed the killed controller after %v, want within 5s", noticed)
			}
		})

		// The agent is unharmed: the deployment is still confirmable.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := dial(t, ctl, "alpha").Confirm(ctx, signer, id)
		if err != nil || res.Outcome != agentv1.Outcome_OUTCOME_CONFIRMED {
			t.Errorf("confirming %s after the vanished streams: %v, %v", id, err, res)
		}
	})
}

// testLocalCommands runs the commands that need no agent through the binary.
func testLocalCommands(t *testing.T, f *fleettest.Fleet) {
	key := filepath.Join(t.TempDir(), "sub", "operator.key")
	r := f.MustCtl(0, "keygen", "--key", key)
	pub := strings.TrimSpace(r.Stdout)
	if _, err := signing.ParsePublicKey(pub); err != nil || strings.Count(r.Stdout, "\n") != 1 {
		t.Errorf("keygen printed %q, want one public key line (%v)", r.Stdout, err)
	}
	if fi, err := os.Stat(key); err != nil {
		t.Errorf("keygen wrote no key file: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("keygen's key file has mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(r.Stderr, "trustedKeys") {
		t.Errorf("keygen does not say where the public key goes:\n%s", r)
	}
	r = f.MustCtl(1, "keygen", "--key", key)
	if !strings.Contains(r.Stderr, "already holds a key") {
		t.Errorf("second keygen over the same file:\n%s", r)
	}
	if r := f.MustCtl(0, "pubkey", "--key", key); strings.TrimSpace(r.Stdout) != pub {
		t.Errorf("pubkey printed %q, keygen %q", r.Stdout, pub)
	}
	// Through PANTHER_KEY: the key the fleet's agents trust.
	if r := f.MustCtl(0, "pubkey"); strings.TrimSpace(r.Stdout) != f.PubKey {
		t.Errorf("pubkey of the fleet's key %q, want %q", r.Stdout, f.PubKey)
	}
	r = f.MustCtl(1, "pubkey", "--key", filepath.Join(t.TempDir(), "missing"))
	if !strings.Contains(r.Stderr, "pantherctl keygen") {
		t.Errorf("pubkey without a key does not say how to make one:\n%s", r)
	}
	if r := f.MustCtl(0, "version"); strings.TrimSpace(r.Stdout) != "pantherctl test" {
		t.Errorf("version printed %q, want the injected version", r.Stdout)
	}

	r = f.MustCtl(0, "--help")
	cmds := helpCommands(r.Stdout)
	for _, want := range []string{"deploy", "rollback", "status", "logs", "keygen", "pubkey", "version"} {
		if !slices.Contains(cmds, want) {
			t.Errorf("--help lists %v, lacks %s:\n%s", cmds, want, r.Stdout)
		}
	}
	for _, cmd := range cmds {
		r := f.MustCtl(0, cmd, "--help")
		if !strings.HasPrefix(r.Stdout, "Usage: pantherctl "+cmd) {
			t.Errorf("%s --help:\n%s", cmd, r)
		}
		if r := f.MustCtl(0, "help", cmd); !strings.HasPrefix(r.Stdout, "Usage: pantherctl "+cmd) {
			t.Errorf("help %s:\n%s", cmd, r)
		}
	}
	if r := f.MustCtl(2, "no-such-command"); !strings.Contains(r.Stderr, "unknown command") {
		t.Errorf("unknown command:\n%s", r)
	}
	f.MustCtl(2)
}

// testNoHostPort shows the agent listens only inside its tsnet node: the
// host's network namespace has no TCP listener of it, and its port is
// closed on the host's address.
func testNoHostPort(t *testing.T, h *fleettest.Host) {
	tcp := h.SB.Run(t, "ss", "-Hltnp")
	udp := h.SB.Run(t, "ss", "-Hlunp")
	t.Logf("TCP listeners in %s:\n%s\nUDP sockets:\n%s", h.Name, tcp, udp)
	for _, l := range strings.Split(tcp, "\n") {
		if strings.Contains(l, "panther-agent") || strings.Contains(l, fmt.Sprintf(":%d ", agentPort)) {
			t.Errorf("TCP listener on the host's interfaces: %s", l)
		}
	}
	// UDP sockets of panther-agent are expected: WireGuard and STUN.
	if j := h.AgentJournal(); strings.Contains(j, "tsnet's PeerAPI listens") {
		t.Errorf("the agent says it was built with tsnet's PeerAPI server:\n%s", j)
	}
	// The same from the kernel's tables of the host's namespace, read
	// without any tool inside it.
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", h.SB.PID(), file))
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range listeningPorts(string(b)) {
			if port == agentPort {
				t.Errorf("/proc/net/%s of %s: port %d listening", file, h.Name, agentPort)
			}
		}
	}
	addr := net.JoinHostPort(h.SB.IP().String(), strconv.Itoa(agentPort))
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("dialing %s on the host's interface succeeded", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialing %s: %v, want connection refused", addr, err)
	}
}

// listeningPorts returns the local ports of the LISTEN sockets in a
// /proc/net/tcp{,6} table.
func listeningPorts(table string) []int {
	var ports []int
	for _, l := range strings.Split(table, "\n")[1:] {
		fs := strings.Fields(l)
		if len(fs) < 4 || fs[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(fs[1], ':')
		if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil {
			ports = append(ports, int(p))
		}
	}
	return ports
}

// statusRows parses pantherctl status's "key   value" rows.
func statusRows(out string) map[string]string {
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if len(l) > 15 {
			rows[strings.TrimSpace(l[:15])] = strings.TrimSpace(l[15:])
		}
	}
	return rows
}

// helpCommands lists the commands of pantherctl --help.
func helpCommands(out string) []string {
	var cmds []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Commands:"):
			in = true
		case in && strings.HasPrefix(l, "  "):
			cmds = append(cmds, strings.Fields(l)[0])
		case in:
			in = len(cmds) == 0
		}
	}
	return cmds
}

type packed struct {
	archive.Packed
	path string
}

func packFlake(t *testing.T, dir string) packed {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.tar")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pk, err := archive.Pack(context.Background(), dir, fh)
	if err != nil {
		t.Fatal(err)
	}
	return packed{Packed: pk, path: p}
}

func openFile(t *testing.T, p string) *os.File {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

func dial(t *testing.T, d tailnet.Dialer, host string) *client.Conn {
	t.Helper()
	conn, err := client.Dial(context.Background(), d, host, agentPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitServing dials host until its agent answers Status with an uptime
// that began after since.
func waitServing(t *testing.T, d tailnet.Dialer, host string, since time.Time) *client.Conn {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		conn, err := client.Dial(context.Background(), d, host, agentPort)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := conn.API.Status(ctx, &agentv1.StatusRequest{})
		cancel()
		if err == nil && st.AgentUptime.AsDuration() <= time.Since(since)+time.Second {
			t.Cleanup(func() { conn.Close() })
			return conn
		}
		conn.Close()
		last = err
		if err == nil {
			last = fmt.Errorf("agent up %v: not restarted", st.AgentUptime.AsDuration())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s does not serve again: %v", host, last)
	return nil
}

func sign(t *testing.T, s client.Signer, in *agentv1.Intent) *agentv1.SignedEnvelope {
	t.Helper()
	env, err := s.Sign(in)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// callDeploy sends env to Deploy and returns the events the agent streamed
// (any at all means it accepted the intent) and the status it ended with.
func callDeploy(ctx context.Context, api agentv1.AgentServiceClient, env *agentv1.SignedEnvelope) ([]*agentv1.DeployEvent, error) {
	st, err := api.Deploy(ctx, &agentv1.DeployRequest{Envelope: env})
	if err != nil {
		return nil, err
	}
	var evs []*agentv1.DeployEvent
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, m.GetEvent())
	}
}

func callRollback(ctx context.Context, api agentv1.AgentServiceClient, env *agentv1.SignedEnvelope) error {
	st, err := api.Rollback(ctx, &agentv1.RollbackRequest{Envelope: env})
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); err == io.EOF {
			return errors.New("the agent accepted the rollback")
		} else if err != nil {
			return err
		}
	}
}

func lastOutcome(evs []*agentv1.DeployEvent) agentv1.Outcome {
	for i := len(evs) - 1; i >= 0; i-- {
		if r := evs[i].GetResult(); r != nil {
			return r.Outcome
		}
	}
	return agentv1.Outcome_OUTCOME_UNSPECIFIED
}

// wantStatus checks err is a gRPC status with code and a message that a
// person can act on, containing msg.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want %v", what, code)
	case !ok || st.Code() != code:
		t.Errorf("%s: %v, want code %v", what, err, code)
	case !strings.Contains(st.Message(), msg) || len(st.Message()) < 20:
		t.Errorf("%s: message %q, want a sentence containing %q", what, st.Message(), msg)
	default:
		t.Logf("%s: %v: %s", what, st.Code(), st.Message())
	}
}

// hostState is what a refused request must leave as it was.
type hostState struct {
	h           *fleettest.Host
	deployments []string
	system      string
}

func snapshot(t *testing.T, h *fleettest.Host) hostState {
	t.Helper()
	return hostState{h: h, deployments: h.Deployments(t), system: h.CurrentSystem(t)}
}

func (s hostState) unchanged(t *testing.T, what string) {
	t.Helper()
	if now := s.h.Deployments(t); !slices.Equal(now, s.deployments) {
		t.Errorf("%s: journal records changed: %v -> %v", what, s.deployments, now)
	}
	if now := s.h.CurrentSystem(t); now != s.system {
		t.Errorf("%s: current system changed: %s -> %s", what, s.system, now)
	}
}

func countLines(text string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// hclogTime matches the timestamp hclog starts each agent log line with.
var hclogTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})`)

// waitStreamEnded waits for the agent's debug line saying a method's stream
// from peer ended, logged at or after since, and returns the agent's own
// timestamp of it.
func waitStreamEnded(t *testing.T, h *fleettest.Host, method, peer string, since time.Time) (time.Time, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(h.AgentJournal(), "\n") {
			if !strings.Contains(l, "stream ended") || !strings.Contains(l, "method="+method) || !strings.Contains(l, peer) {
				continue
			}
			ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", hclogTime.FindString(l))
			if err != nil {
				t.Fatalf("no time on the agent's line %q: %v", l, err)
			}
			if !ts.Before(since.Truncate(time.Millisecond)) {
				return ts, l
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the agent never logged the end of the %s stream from %s:\n%s", method, peer, h.AgentJournal())
	return time.Time{}, ""
}
