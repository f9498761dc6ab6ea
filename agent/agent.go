// Package agent wires panther-agent together: it loads the config, opens the
// journal and replay cache, starts the deploy engine (which resumes any
// unfinished deployment), joins the tailnet and serves the agent API on the
// tailnet listener only.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/pantheros/panther/agent/activation"
	"github.com/pantheros/panther/agent/config"
	"github.com/pantheros/panther/agent/deploy"
	"github.com/pantheros/panther/agent/journal"
	"github.com/pantheros/panther/agent/server"
	"github.com/pantheros/panther/internal/archive"
	"github.com/pantheros/panther/internal/signing"
	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/internal/version"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// serve runs the agent until ctx ends.
func serve(ctx context.Context, cfg *config.Config, log hclog.Logger) error {
	log.Info("starting", "version", version.Version, "host", cfg.HostName, "state", cfg.StateDir)
	warnPeerAPIListener(log)
	j, err := journal.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	replay, err := signing.OpenReplayCache(filepath.Join(cfg.StateDir, "nonces"), time.Now())
	if err != nil {
		return err
	}
	defer replay.Close()
	verifier, err := signing.NewVerifier(cfg.TrustedKeys)
	if err != nil {
		return err
	}
	nixRunner := newNix(cfg, log)
	sys, err := newHealth(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer sys.Close()
	self := newAgentSelf(cfg.UnitName, os.Args, "/proc/self/cgroup", activation.ExecRunner{}, restartOverBus, log)
	act := activation.New(activation.Options{Environment: switchEnvironment()}, activation.BusConnector(""), log)
	defer act.Close()
	obs, err := newObservers(cfg, log)
	if err != nil {
		return err
	}
	defer obs.close()
	var node *tailnet.Node // set below; the fleet cache dials through it
	cache := newFleetCache(cfg, nixRunner.n, func(ctx context.Context, network, addr string) (net.Conn, error) {
		if node == nil {
			return nil, errors.New("the tailnet is not up yet")
		}
		return node.Dial(ctx, network, addr)
	}, log)
	engine, err := deploy.New(deploy.Options{
		Host: cfg.HostName, FlakeHost: cfg.FlakeHost, Profile: cfg.Profile, CurrentSystem: cfg.CurrentSystem, RuntimeDir: cfg.RuntimeDir,
		DefaultConfirm: cfg.ConfirmTimeout.Duration, MaxConfirm: cfg.MaxConfirmTimeout.Duration,
		Retention: cfg.LogRetention, SwitchTimeout: cfg.SwitchTimeout.Duration, AgentUnit: cfg.UnitName,
	}, deploy.Deps{
		Nix:       nixRunner,
		Activator: act,
		Health:    sys,
		Journal:   j,
		Log:       log,
		Agent:     self,
		OnResult:  obs.onResult,
		Host:      newShutdownProbe(),
		Cache:     asFleetCache(cache),
	})
	if err != nil {
		return err
	}
	// Resume before serving: a deployment interrupted by a restart or a
	// reboot is decided by the journal, not by whoever calls first.
	if err := engine.Start(); err != nil {
		return fmt.Errorf("resuming deployments: %w", err)
	}
	defer engine.Close()

	node, err = tailnet.New(tailnet.Config{
		Hostname: cfg.HostName, StateDir: filepath.Join(cfg.StateDir, "tsnet"), ControlURL: cfg.ControlURL,
		AuthKeyFile: cfg.AuthKeyFile, Tags: cfg.Tags, NoLogsNoSupport: cfg.NoLogs(),
	}, log)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := node.Up(ctx); err != nil {
		return fmt.Errorf("joining the tailnet: %w", err)
	}
	// The only listener: on the tailnet, never on the host's interfaces.
	ln, err := node.Listen("tcp", fmt.Sprintf(":%d", cfg.Port))
	if err != nil {
		return err
	}
	authz, err := tailnet.NewAuthorizer(tailnet.AuthorizerConfig{AllowedTags: cfg.AllowedTags, AllowedUsers: cfg.AllowedUsers}, node, log)
	if err != nil {
		return err
	}
	if obs.metrics != nil {
		// On the tailnet too, for the same peers as the API.
		mln, err := listenMetrics(node, cfg.Metrics.Port)
		if err != nil {
			return err
		}
		obs.serveMetrics(mln, authz)
		log.Info("serving metrics on the tailnet", "port", cfg.Metrics.Port)
	}
	stopCache, err := serveFleetCache(cfg, cache, node, log)
	if err != nil {
		return err
	}
	defer stopCache()
	// Every peer is bounded: streams per connection, open calls and call
	// rate per peer (over a limit: ResourceExhausted naming it).
	limits := tailnet.PeerLimits{}
	opts := append(tailnet.ServerKeepalive(), tailnet.ServerOptions(authz, tailnet.NewLimiter(limits, log))...)
	opts = append(opts, grpc.MaxRecvMsgSize(4<<20))
	gs := grpc.NewServer(opts...)
	sources := sourceStore{Store: archive.Store{Dir: filepath.Join(cfg.StateDir, "sources")}, j: j, log: log.Named("sources")}
	sources.start()
	agentv1.RegisterAgentServiceServer(gs, server.New(server.Config{
		Host: cfg.HostName, Verifier: verifier, Policy: signing.Policy{Host: cfg.HostName}, Replay: replay,
		Engine: engine, Journal: j, Sources: sources,
		Limits: archive.Limits{MaxBytes: cfg.MaxUploadBytes}, System: sys, Control: node, Log: log,
		Inputs: newInputStore(cfg, nixRunner, log), LockCheck: nixRunner.n,
	}))
	log.Info("serving on the tailnet", "port", cfg.Port, "allowedTags", cfg.AllowedTags, "allowedUsers", cfg.AllowedUsers, "limits", limits.String())
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(ln) }()
	// Type=notify units (the NixOS module's) become active only now that the
	// tailnet listener is up; elsewhere this does nothing.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("notifying systemd", "error", err)
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			gs.Stop()
		}
		return nil
	case err := <-errc:
		return err
	}
}

// switchEnvironment is what the agent passes on to switch-to-configuration's
// units from its own environment, as nixos-rebuild does (systemd-run -E
// LOCALE_ARCHIVE).
func switchEnvironment() []string {
	if v, ok := os.LookupEnv("LOCALE_ARCHIVE"); ok {
		return []string{"LOCALE_ARCHIVE=" + v}
	}
	return nil
}
