# services.panther-agent: runs panther-agent, which builds this host's flake
# on request of a panther controller (reached only over the tailnet), switches
# to it and rolls back by itself unless the controller confirms in time.
#
# Every option except enable, package and extraArgs is rendered, under the
# same name, into the agent's JSON config (see agent/config); options left
# null are dropped so the agent applies its own default.
#
# The module uses only builtins and a few lib functions so that it evaluates
# with the small stub in ./stub (no nixpkgs needed); keep it that way.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;

  cfg = config.services.panther-agent;

  # A Go duration string ("90s", "1m30s") or a whole number of seconds.
  duration = types.either types.ints.positive
    (types.strMatching "([0-9]+(\\.[0-9]*)?(ns|us|ms|s|m|h))+");

  healthCheck = types.submodule {
    options = {
      name = mkOption {
        type = types.str;
        description = "Name of the check in logs and results; unique. Required.";
      };
      type = mkOption {
        type = types.enum [ "http" "tcp" "command" ];
        description = ''
          What the check does: `http` fetches `url` and wants `expectStatus`,
          `tcp` connects to `address`, `command` runs `command` and wants exit 0.
          Required.
        '';
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://127.0.0.1:8080/healthz";
        description = "URL fetched by an http check (http checks only).";
      };
      expectStatus = mkOption {
        type = types.nullOr (types.ints.between 100 599);
        default = null;
        description = "HTTP status an http check wants; null means 200 (http checks only).";
      };
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "127.0.0.1:5432";
        description = "host:port a tcp check connects to (tcp checks only).";
      };
      command = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "/run/current-system/sw/bin/systemctl" "is-active" "nginx.service" ];
        description = "Program and arguments a command check runs (command checks only).";
      };
      timeout = mkOption {
        type = duration;
        default = "5s";
        description = "Time limit of one attempt.";
      };
      interval = mkOption {
        type = duration;
        default = "2s";
        description = "Pause between attempts.";
      };
      retries = mkOption {
        type = types.ints.unsigned;
        default = 0;
        description = "How many more attempts follow a failed one before the check fails.";
      };
    };
  };

  dropNulls = v:
    if builtins.isAttrs v then
      builtins.mapAttrs (_: dropNulls)
        (builtins.removeAttrs v (builtins.filter (n: v.${n} == null) (builtins.attrNames v)))
    else if builtins.isList v then map dropNulls v
    else v;

  # The agent's config file. Fields are picked by name (a submodule's value
  # also carries the module system's internal `_module` attribute).
  rendered = dropNulls {
    inherit (cfg)
      hostName flakeHost controlUrl authKeyFile tags allowedTags allowedUsers
      trustedKeys port stateDir profile confirmTimeout maxConfirmTimeout
      healthSettle criticalUnits logRetention maxUploadBytes nixExtraConfig
      noLogsNoSupport logLevel logJSON;
    healthChecks = map
      (c: {
        inherit (c) name type url expectStatus address command timeout interval retries;
      })
      cfg.healthChecks;
    unitName = "panther-agent.service";
  };

  configFile = pkgs.writeText "panther-agent.json" (builtins.toJSON cfg.renderedConfig);

  stateDirUnderVarLib = lib.hasPrefix "/var/lib/" cfg.stateDir;

  validKey = k: builtins.match "panther-ed25519:[A-Za-z0-9+/]{43}=" k != null;

  checkComplete = c:
    if c.type == "http" then c.url != null && c.address == null && c.command == null
    else if c.type == "tcp" then c.address != null && c.url == null && c.command == null && c.expectStatus == null
    else c.command != null && c.command != [ ] && c.url == null && c.address == null && c.expectStatus == null;
in
{
  options.services.panther-agent = {
    enable = mkEnableOption "panther-agent, which deploys this host's NixOS configuration when a trusted panther controller asks over the tailnet";

    package = mkOption {
      type = types.package;
      default = pkgs.panther-agent;
      defaultText = literalExpression "pkgs.panther-agent";
      description = "The panther-agent package. The panther flake's nixosModules.default sets it to the flake's build.";
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = "Hostname of the agent's node on the tailnet.";
    };

    flakeHost = mkOption {
      type = types.str;
      default = cfg.hostName;
      defaultText = literalExpression "config.services.panther-agent.hostName";
      description = "Attribute of `nixosConfigurations` in the deployed flake that this host builds.";
    };

    controlUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://headscale.example.com";
      description = "Coordination server; null uses Tailscale's. Set it to your Headscale URL otherwise.";
    };

    authKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/panther-authkey";
      description = ''
        File holding a tailnet auth key for the node's first login (later starts
        reuse the node state in `stateDir`). A path string outside the Nix store:
        a Nix path literal here would copy the key into the world-readable store.
      '';
    };

    tags = mkOption {
      type = types.listOf types.str;
      default = [ "tag:panther-agent" ];
      description = "ACL tags the agent's node advertises. The tailnet's tagOwners must allow them for the auth key's owner.";
    };

    allowedTags = mkOption {
      type = types.listOf types.str;
      default = [ "tag:panther-controller" ];
      description = "Tags of the peers allowed to call the agent.";
    };

    allowedUsers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "alice@example.com" ];
      description = "Login names allowed to call the agent from untagged nodes.";
    };

    trustedKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "panther-ed25519:ziNh8gNkF3ILRVEAspoHseQjpJeqbXQb+j8442Qd1ao=" ];
      description = ''
        Public keys of the controllers whose signed requests the agent obeys,
        each the line printed by `pantherctl keygen`. At least one is required.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 7443;
      description = ''
        Port of the agent's gRPC endpoint, which exists only on the tailnet. The
        agent's tailnet node runs in userspace (tsnet) and only makes outgoing
        connections, so no firewall port needs opening.
      '';
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/panther-agent";
      description = "Directory of the agent's tailnet state, journal and uploaded flake sources.";
    };

    profile = mkOption {
      type = types.str;
      default = "/nix/var/nix/profiles/system";
      description = "Nix profile holding the system generations.";
    };

    confirmTimeout = mkOption {
      type = duration;
      default = "60s";
      description = "How long a new generation waits for the controller's confirmation (when the request names no timeout) before the agent rolls back.";
    };

    maxConfirmTimeout = mkOption {
      type = duration;
      default = "15m";
      description = "Longest confirmation timeout a request may ask for.";
    };

    healthSettle = mkOption {
      type = duration;
      default = "5s";
      description = "Pause after a switch before unit states and health checks are judged.";
    };

    criticalUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "nginx.service" "postgresql.service" ];
      description = "Units that must be active after a switch; otherwise the agent rolls back.";
    };

    healthChecks = mkOption {
      type = types.listOf healthCheck;
      default = [ ];
      description = "Checks run after a switch; one failing check makes the agent roll back.";
    };

    logRetention = mkOption {
      type = types.ints.positive;
      default = 50;
      description = "Number of deployments whose logs are kept.";
    };

    maxUploadBytes = mkOption {
      type = types.ints.positive;
      default = 1073741824;
      description = "Largest flake source archive the agent accepts, in bytes (default 1 GiB).";
    };

    nixExtraConfig = mkOption {
      type = types.lines;
      default = "";
      example = "max-jobs = 2";
      description = "Extra nix.conf lines, passed in NIX_CONFIG to every nix call of the agent.";
    };

    noLogsNoSupport = mkOption {
      type = types.bool;
      default = cfg.controlUrl != null;
      defaultText = literalExpression "config.services.panther-agent.controlUrl != null";
      description = "Stop the embedded tailnet node from uploading its logs to Tailscale's log servers. On by default with a self-hosted `controlUrl`.";
    };

    logLevel = mkOption {
      type = types.enum [ "trace" "debug" "info" "warn" "error" "off" ];
      default = "info";
      description = "Log level of the agent.";
    };

    logJSON = mkOption {
      type = types.bool;
      default = false;
      description = "Log JSON lines instead of text.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--log-level=debug" ];
      description = "Extra command-line arguments of `panther-agent run`; flags override the config file.";
    };

    renderedConfig = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = rendered;
      description = "The agent's config file as rendered from these options (for inspection and tests).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.trustedKeys != [ ];
        message = "services.panther-agent.trustedKeys: add at least one controller key (run `pantherctl keygen` and paste the panther-ed25519:... line).";
      }
      {
        assertion = builtins.all validKey cfg.trustedKeys;
        message = "services.panther-agent.trustedKeys: every entry must look like panther-ed25519:<44 characters of base64>, as printed by `pantherctl keygen`.";
      }
      {
        assertion = cfg.authKeyFile == null || !(lib.hasPrefix builtins.storeDir cfg.authKeyFile);
        message = "services.panther-agent.authKeyFile: the file is in the world-readable Nix store; give the path of a secret outside it.";
      }
      {
        assertion = builtins.all checkComplete cfg.healthChecks;
        message = "services.panther-agent.healthChecks: an http check needs url only, a tcp check address only, a command check command only.";
      }
    ];

    # Same store file as on the command line: /etc holds it for people and
    # tools, while ExecStart names the store path so that a config change
    # also changes the unit.
    environment.etc."panther/agent.json".source = configFile;

    systemd.tmpfiles.rules = lib.optional (!stateDirUnderVarLib) "d ${cfg.stateDir} 0700 root root -";

    systemd.services.panther-agent = {
      description = "panther deployment agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ config.nix.package config.systemd.package pkgs.git ];

      # The agent drives switch-to-configuration itself: a switch must never
      # stop or restart it halfway. A new agent package or config takes
      # effect at the agent's next restart.
      restartIfChanged = false;
      stopIfChanged = false;

      environment = {
        # Builds go to nix-daemon, so they run with the daemon's build users
        # and outside this unit's mount namespace and cgroup.
        NIX_REMOTE = "daemon";
        # ProtectHome hides /root: keep git's and nix's per-user files
        # (fetcher and eval caches) in the state directory instead.
        HOME = cfg.stateDir;
        XDG_CACHE_HOME = "${cfg.stateDir}/cache";
      };

      # Keep trying for ever: a host whose agent gave up can only be
      # reached by hand.
      unitConfig.StartLimitIntervalSec = 0;

      serviceConfig = {
        ExecStart = "${cfg.package}/bin/panther-agent run --config ${configFile}"
          + lib.optionalString (cfg.extraArgs != [ ]) " ${lib.escapeShellArgs cfg.extraArgs}";
        # The agent tells systemd it is ready once its tailnet listener is up.
        Type = "notify";
        NotifyAccess = "main";
        Restart = "always";
        RestartSec = "5s";
        # Stopping the agent kills only the agent. The switch itself runs in
        # its own transient unit (systemd-run) and is not affected either way.
        KillMode = "process";

        # Hardening that leaves the agent able to do its job as root:
        # - ProtectHome: the agent only reads its state dir and the store;
        #   HOME points at the state dir (above).
        # - PrivateTmp: nothing is shared with other units through /tmp. The
        #   switch unit started by systemd-run does NOT share this /tmp, so
        #   the agent must hand it files under stateDir, never under /tmp.
        # - NoNewPrivileges: the agent is root already and gains nothing
        #   from setuid or file capabilities. Nix is unaffected: builds run
        #   in nix-daemon and even a local-store nix only drops privileges
        #   (build users) and installs seccomp filters, which NNP permits.
        #   The switch runs in a transient unit created by PID 1, which does
        #   not inherit NNP, so activation scripts and setuid wrappers behave
        #   as under nixos-rebuild. (dry-activate does run as the agent's
        #   child, under NNP; it only reports, as root.)
        # agent/config's TestModuleUnitHardeningKeepsAgentWorking checks
        # these in a real systemd: build via the daemon, profile switch,
        # systemd-run switch without NNP, private /tmp, read-only /root.
        # Not set, on purpose: RuntimeDirectory (systemd would empty
        # /run/panther-agent on every stop, and the agent tells a reboot from
        # its own restart by what survives there), ProtectSystem (the agent
        # writes the system profile under /nix/var/nix/profiles and a
        # local-store nix remounts
        # /nix/store read-write), PrivateDevices, PrivateNetwork and the
        # Restrict*/SystemCallFilter family (nix and systemd-run need
        # namespaces, sockets and D-Bus).
        ProtectHome = true;
        PrivateTmp = true;
        NoNewPrivileges = true;
      } // lib.optionalAttrs stateDirUnderVarLib {
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
      };
    };
  };
}
