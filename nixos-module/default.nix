# services.panther-agent: runs panther-agent, which builds this host's flake
# on request of a panther controller (reached only over the tailnet), switches
# to it and rolls back by itself unless the controller confirms in time.
#
# Every option except enable, package and extraArgs is rendered, under the
# same name, into the agent's JSON config (see agent/config); options left
# null are dropped so the agent applies its own default.
#
# It refuses at evaluation what the agent refuses at start: the cheap rules
# of agent/config's Validate are mirrored as assertions (see `refusals`)
# whose messages name the option and the bad item, and, with checkConfig,
# the rendered file goes through the agent's own `check-config` in the build.
#
# The module uses only builtins and a few lib functions so that it evaluates
# with the small stub in ./stub (no nixpkgs needed); keep it that way.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;

  cfg = config.services.panther-agent;

  # A Go duration string ("90s", "1m30s") or a whole number of seconds. Its
  # value (positive, in range) is checked by the assertions, whose messages
  # say why: the type only checks the form.
  durationRe = "([0-9]+(\\.[0-9]*)?(ns|us|ms|s|m|h))+";
  duration = types.either types.ints.unsigned (types.strMatching durationRe);

  # seconds d: a duration option's value in seconds, as a float (Go's
  # time.ParseDuration, whose overflow past maxSeconds the agent refuses).
  unitSeconds = { ns = 1.0e-9; us = 1.0e-6; ms = 1.0e-3; s = 1.0; m = 60.0; h = 3600.0; };
  maxSeconds = 9223372036.854775807; # 2^63-1 ns
  decimal = digits: frac:
    let intPart = builtins.head (builtins.match "0*([0-9]+)" digits); in
    builtins.fromJSON "${intPart}.${if frac == null then "" else frac}0";
  seconds = d:
    if builtins.isInt d then d * 1.0
    else builtins.foldl' (sum: p: sum + decimal (builtins.elemAt p 0) (builtins.elemAt p 2) * unitSeconds.${builtins.elemAt p 3}) 0.0
      (builtins.filter builtins.isList (builtins.split "([0-9]+)(\\.([0-9]*))?(ns|us|ms|s|m|h)" d));

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
      port stateDir profile confirmTimeout maxConfirmTimeout
      healthSettle switchTimeout criticalUnits logRetention maxUploadBytes nixExtraConfig
      noLogsNoSupport logLevel logJSON;
    # Two modules adding the same key give it twice; the agent refuses
    # duplicates.
    trustedKeys = lib.unique cfg.trustedKeys;
    healthChecks = map
      (c: {
        inherit (c) name type url expectStatus address command timeout interval retries;
      })
      cfg.healthChecks;
    unitName = "panther-agent.service";
  } // observabilityRendered // fleetCacheRendered;

  # ---- BEGIN fleet cache (rendered) ---------------------------------------
  # Rendered only when set, so that a host without it gets the same file.
  fleetCacheCfg = cfg.fleetCache;
  fleetCacheRendered =
    if fleetCacheCfg.secretKeyFile == null && fleetCacheCfg.trustedKeys == [ ] then { } else {
      fleetCache = dropNulls {
        inherit (fleetCacheCfg) secretKeyFile port startWait;
        trustedKeys = lib.unique fleetCacheCfg.trustedKeys;
      };
    };
  # ---- END fleet cache (rendered) -----------------------------------------

  # ---- BEGIN metrics and result hooks (rendered) -------------------------
  # Rendered only when set, so that a host without them gets the same file.
  hooksCfg = cfg.resultHooks;
  observabilityRendered =
    (if cfg.metrics.port == null then { } else { metrics = { inherit (cfg.metrics) port; }; })
    // (if hooksCfg.command == null && hooksCfg.webhookUrl == null then { } else {
      resultHooks = dropNulls {
        inherit (hooksCfg) command commandTimeout webhookUrl webhookTimeout webhookAttempts;
      };
    });
  # ---- END metrics and result hooks (rendered) ---------------------------

  configFile = pkgs.writeText "panther-agent.json" (builtins.toJSON cfg.renderedConfig);

  # The config file the unit and /etc use. With checkConfig, the agent's own
  # check-config reads it, with extraArgs, in the build: a value the agent
  # would refuse at start fails the system build with the agent's message.
  checkedConfigFile =
    if !cfg.checkConfig then configFile
    else
      pkgs.runCommand "panther-agent.json" { } ''
        ${cfg.package}/bin/panther-agent check-config --config ${configFile} ${lib.escapeShellArgs cfg.extraArgs} >/dev/null
        cp ${configFile} $out
      '';

  stateDirUnderVarLib = lib.hasPrefix "/var/lib/" cfg.stateDir;

  validKey = k: builtins.match "panther-ed25519:[A-Za-z0-9+/]{43}=" k != null;

  checkComplete = c:
    if c.type == "http" then c.url != null && c.address == null && c.command == null
    else if c.type == "tcp" then c.address != null && c.url == null && c.command == null && c.expectStatus == null
    else c.command != null && c.command != [ ] && c.url == null && c.address == null && c.expectStatus == null;

  # ---- What the agent refuses at start (agent/config Validate), refused at
  # evaluation with the option and the bad item named. -----------------------
  opt = name: "services.panther-agent.${name}";
  show = builtins.toJSON;
  # refuse name bad why: one assertion over the bad items of an option.
  refuse = name: bad: why: {
    assertion = bad == [ ];
    message = "${opt name}: ${builtins.concatStringsSep ", " (map show bad)}: ${why}";
  };
  matches = re: s: builtins.match re s != null;

  # Go's filepath.Clean leaves it unchanged: absolute, no empty, "." or ".."
  # component, no trailing slash.
  cleanAbsPath = p: p == "/" || (matches "(/[^/]+)+" p
    && !(builtins.any (c: c == "." || c == "..") (builtins.filter builtins.isString (builtins.split "/" p))));
  # Directories the agent must not take over (it makes its state dir 0700).
  systemDirs = [
    "/" "/bin" "/boot" "/dev" "/etc" "/home" "/lib" "/mnt" "/nix" "/nix/store" "/nix/var" "/opt" "/proc"
    "/root" "/run" "/srv" "/sys" "/tmp" "/usr" "/var" "/var/cache" "/var/empty" "/var/lib" "/var/log" "/var/tmp"
  ];
  unitSuffixes = "service|socket|target|mount|automount|timer|path|device|swap|scope|slice";
  isUnitName = u: builtins.stringLength u <= 255 && matches "[^/[:space:][:cntrl:]]+\\.(${unitSuffixes})" u;
  isTag = matches "tag:[A-Za-z][A-Za-z0-9-]*";
  isHttpURL = matches "[hH][tT][tT][pP][sS]?://[^/?#[:space:]]+([/?#][^[:space:]]*)?";
  isHostPort = a:
    let m = builtins.match "([[][0-9A-Za-z:.%_-]+[]]|[^:]+):([0-9]{1,5})" a; in
    m != null && (let port = builtins.fromJSON (builtins.head (builtins.match "0*([0-9]+)" (builtins.elemAt m 1))); in port >= 1 && port <= 65535);
  isHostName = h: builtins.stringLength h <= 253 && matches "[A-Za-z0-9_][A-Za-z0-9_.-]*" h;
  isAttrName = h: builtins.stringLength h <= 128 && matches "[A-Za-z0-9_][A-Za-z0-9_-]*" h;

  # durationProblem name d zeroOK: why the agent refuses duration d, or null.
  durationProblem = d: zeroOK:
    let secs = seconds d; in
    if secs >= maxSeconds then "${show d} is out of range (at most 2562047h)"
    else if !zeroOK && secs <= 0 then "${show d} must be a positive duration (the agent would not wait at all)"
    else null;
  durationAssertion = name: d: zeroOK:
    let why = durationProblem d zeroOK; in
    { assertion = why == null; message = "${opt name}: ${toString why}"; };

  # panther-agent run's flags (agent/config/flags.go; TestModuleKnowsAgentFlags
  # keeps this list in step). config is set by the module.
  agentFlags = [
    "hostname" "flake-host" "state-dir" "control-url" "auth-key-file" "tag" "allowed-tag" "allowed-user"
    "trusted-key" "port" "profile" "current-system" "runtime-dir" "confirm-timeout" "max-confirm-timeout"
    "health-settle" "switch-timeout" "critical-unit" "log-retention" "max-upload-bytes" "nix-extra-config" "no-logs-no-support"
    "log-level" "log-json" "unit-name" "systemd-run-path"
  ];
  boolFlags = [ "no-logs-no-support" "log-json" ];
  # extraArgsProblems i: the arguments from i on that Go's flag parsing in
  # `panther-agent run` would refuse.
  extraArgsProblems = i:
    let
      args = cfg.extraArgs;
      a = builtins.elemAt args i;
      m = builtins.match "--?([^=-][^=]*)(=.*)?" a;
      name = builtins.head m;
    in
    if i >= builtins.length args then [ ]
    else if m == null then [ "${show a} is not a flag (give values as --flag=value)" ] ++ extraArgsProblems (i + 1)
    else if name == "config" then [ "${show a}: the module sets --config" ] ++ extraArgsProblems (i + 1)
    else if !(builtins.elem name agentFlags) then [ "${show a} is not a flag of panther-agent run" ] ++ extraArgsProblems (i + 1)
    else if builtins.elemAt m 1 != null || builtins.elem name boolFlags then extraArgsProblems (i + 1)
    else if i + 1 >= builtins.length args then [ "${show a} needs a value" ]
    else extraArgsProblems (i + 2);

  healthCheckNames = map (c: c.name) cfg.healthChecks;

  refusals = [
    {
      assertion = isHostName cfg.hostName;
      message = "${opt "hostName"}: ${show cfg.hostName} is not a hostname: use letters, digits, '-', '_' and '.'";
    }
    {
      assertion = isAttrName cfg.flakeHost;
      message = "${opt "flakeHost"}: ${show cfg.flakeHost}${lib.optionalString (cfg.flakeHost == cfg.hostName) " (hostName, its default)"} is not a plain nixosConfigurations attribute name: use letters, digits, '-' and '_', not starting with '-', or set flakeHost";
    }
    {
      assertion = cfg.controlUrl == null || isHttpURL cfg.controlUrl;
      message = "${opt "controlUrl"}: ${show cfg.controlUrl} is not an http(s) URL with a host; leave it null for Tailscale's control server";
    }
    (refuse "tags" (builtins.filter (t: !isTag t) cfg.tags) "not a tailnet tag like \"tag:panther-agent\" (tag:, a letter, then letters, digits and '-')")
    (refuse "allowedTags" (builtins.filter (t: !isTag t) cfg.allowedTags) "not a tailnet tag like \"tag:panther-controller\" (tag:, a letter, then letters, digits and '-')")
    (refuse "allowedUsers" (builtins.filter (u: !matches "[^[:space:][:cntrl:]]+" u) cfg.allowedUsers) "not a login name")
    {
      assertion = cfg.allowedTags != [ ] || cfg.allowedUsers != [ ];
      message = "${opt "allowedTags"}: no caller could reach the agent: allow at least one tag or set allowedUsers";
    }
    (refuse "stateDir" (builtins.filter (p: !cleanAbsPath p) [ cfg.stateDir ]) "not a clean absolute path (no trailing slash, no empty, . or .. component)")
    (refuse "stateDir" (builtins.filter (p: builtins.elem p systemDirs || lib.hasPrefix "/nix/store/" p) [ cfg.stateDir ])
      "a system directory, which the agent would make root-only (mode 0700): give it a directory of its own, like /var/lib/panther-agent")
    (refuse "profile" (builtins.filter (p: !cleanAbsPath p) [ cfg.profile ]) "not a clean absolute path")
    (refuse "authKeyFile" (builtins.filter (p: p != null && !cleanAbsPath p) [ cfg.authKeyFile ]) "not a clean absolute path")
    (refuse "criticalUnits" (builtins.filter (u: !isUnitName u) cfg.criticalUnits) "not a systemd unit name with its type, like \"nginx.service\"")
    {
      assertion = extraArgsProblems 0 == [ ];
      message = "${opt "extraArgs"}: ${builtins.concatStringsSep "; " (extraArgsProblems 0)}";
    }
    (durationAssertion "confirmTimeout" cfg.confirmTimeout false)
    (durationAssertion "maxConfirmTimeout" cfg.maxConfirmTimeout false)
    (durationAssertion "healthSettle" cfg.healthSettle true)
    {
      assertion = seconds cfg.confirmTimeout <= seconds cfg.maxConfirmTimeout;
      message = "${opt "confirmTimeout"}: ${show cfg.confirmTimeout} is longer than maxConfirmTimeout (${show cfg.maxConfirmTimeout})";
    }
    (refuse "healthChecks" (builtins.filter (n: builtins.length (builtins.filter (m: m == n) healthCheckNames) > 1) (lib.unique healthCheckNames))
      "the name of more than one check; names must be unique")
  ] ++ builtins.concatLists (builtins.genList
    (i:
      let
        c = builtins.elemAt cfg.healthChecks i;
        name = "healthChecks.${toString i}";
      in
      [
        (durationAssertion "${name}.timeout" c.timeout false)
        (durationAssertion "${name}.interval" c.interval false)
        (refuse "${name}.url" (builtins.filter (u: u != null && !isHttpURL u) [ c.url ]) "not an http(s) URL with a host")
        (refuse "${name}.address" (builtins.filter (a: a != null && !isHostPort a) [ c.address ]) "not host:port (a host and a port from 1 to 65535)")
      ])
    (builtins.length cfg.healthChecks))
  ++ [
    (refuse "settings" (builtins.filter (k: rendered ? ${k}) (builtins.attrNames cfg.settings))
      "has an option of its own: set it through that option, not settings")
  ];
in
{
  options.services.panther-agent = {
    enable = mkEnableOption "panther-agent, which deploys this host's NixOS configuration when a trusted panther controller asks over the tailnet";

    package = lib.mkPackageOption pkgs "panther-agent" {
      extraDescription = "The panther flake's nixosModules.default sets it to the flake's build.";
    };

    checkConfig = mkOption {
      type = types.bool;
      default = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
      defaultText = literalExpression "pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform";
      description = ''
        Check the rendered config file (and `extraArgs`) with the agent's own
        `panther-agent check-config` while building the system, so that a value
        the agent would refuse at start fails the build instead. Off when
        cross-compiling (the build machine cannot run the host's agent).
      '';
    };

    settings = mkOption {
      type = (pkgs.formats.json { }).type;
      default = { };
      example = { runtimeDir = "/run/panther-agent"; };
      description = ''
        Agent config keys this module has no option for, rendered as they are
        into the agent's config file. The agent refuses unknown keys (and
        `checkConfig` catches that in the build); keys that have an option here
        must be set through the option.
      '';
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
      # types.port admits 0, which the agent would replace by its default.
      type = types.ints.between 1 65535;
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
      description = "Pause after a switch before unit states and health checks are judged; 0 judges at once.";
    };

    switchTimeout = mkOption {
      type = duration;
      default = "10m";
      description = "Longest run of switch-to-configuration (a switch, a rollback's switch, a dry-activate) in its transient unit; past it systemd stops the unit, freeing the switch lock, and the deployment rolls back.";
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

    # ---- BEGIN metrics and result hooks (options) --------------------------
    metrics.port = mkOption {
      type = types.nullOr (types.ints.between 1 65535);
      default = null;
      example = 9464;
      description = ''
        Tailnet port of the agent's Prometheus endpoint (`GET /metrics`);
        null serves none. It listens on the tailnet only, never on the host's
        interfaces, and answers the same peers as the agent API
        (`allowedTags`, `allowedUsers`): scrape from a tagged or allowed node.
      '';
    };

    resultHooks = {
      command = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = literalExpression ''[ "''${pkgs.curl}/bin/curl" "-fsS" "--data-binary" "@-" "https://ntfy.example.com/deploys" ]'';
        description = ''
          Program and arguments run on each final deployment result, with the
          result as JSON on stdin and as `PANTHER_*` environment variables.
          Its output goes to the agent's log.
        '';
      };
      commandTimeout = mkOption {
        type = types.nullOr duration;
        default = null;
        description = "Time limit of one run of the command; null means 30s.";
      };
      webhookUrl = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://hooks.example.com/panther";
        description = ''
          http(s) URL that receives a POST of each final result as JSON.
          The request leaves the tailnet if the URL points outside it. The
          URL ends up in the world-readable Nix store.
        '';
      };
      webhookTimeout = mkOption {
        type = types.nullOr duration;
        default = null;
        description = "Time limit of one POST attempt; null means 10s.";
      };
      webhookAttempts = mkOption {
        type = types.nullOr (types.ints.between 1 10);
        default = null;
        description = "Attempts of the POST (network errors, 5xx and 429 are retried); null means 3.";
      };
    };
    # ---- END metrics and result hooks (options) ----------------------------

    # ---- BEGIN fleet cache (options) ---------------------------------------
    fleetCache = {
      secretKeyFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/keys/panther-fleet-cache.key";
        description = ''
          The fleet's Nix signing key (`nix key generate-secret --key-name
          fleet-1`), outside the Nix store. When set, the agent serves its
          store read-only as a Nix binary cache on the tailnet
          (`fleetCache.port`), to peers carrying one of the agent's own
          `tags` only, every narinfo signed with this key, so that the hosts
          of a rollout build each system once and substitute it from each
          other. null serves nothing.
        '';
      };
      trustedKeys = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "fleet-1:vPbt4WmSXbeeqt79IhsLgriseZoaiiDShIj0oVySp3s=" ];
        description = ''
          Public keys (`nix key convert-secret-to-public`) a system
          substituted from a build peer must be signed with; nix checks the
          signature and the NAR's hash as for any substitute. Empty: the
          agent never substitutes from its peers (it builds by itself). The
          host's own substituters (nix.settings.substituters) keep working
          either way.
        '';
      };
      port = mkOption {
        type = types.nullOr (types.ints.between 1 65535);
        default = null;
        description = "Tailnet port of the fleet cache, the same on every agent; null means 7444.";
      };
      startWait = mkOption {
        type = types.nullOr duration;
        default = null;
        description = ''
          How long the agent waits for a build peer that has not started
          the rollout or not evaluated yet before it builds by itself (a
          peer that builds is waited for); null means 2m.
        '';
      };
    };
    # ---- END fleet cache (options) -----------------------------------------

    renderedConfig = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = cfg.settings // rendered;
      description = "The agent's config file as rendered from these options and `settings` (for inspection and tests).";
    };
  };

  meta.maintainers = [{ name = "panther maintainers"; github = "pantheros"; }];

  config = mkIf cfg.enable {
    assertions = refusals ++ [
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
      # ---- BEGIN metrics and result hooks (assertions) ----
      {
        assertion = cfg.metrics.port == null || cfg.metrics.port != cfg.port;
        message = "services.panther-agent.metrics.port: ${toString cfg.metrics.port} is already the agent's gRPC port (services.panther-agent.port).";
      }
      {
        assertion = cfg.resultHooks.webhookUrl == null
          || builtins.match "https?://[^/?#[:space:]]+([/?][^#[:space:]]*)?" cfg.resultHooks.webhookUrl != null;
        message = "services.panther-agent.resultHooks.webhookUrl: ${toString cfg.resultHooks.webhookUrl} is not an http(s) URL with a host (and no #fragment).";
      }
      {
        assertion = cfg.resultHooks.command == null || (cfg.resultHooks.command != [ ] && builtins.head cfg.resultHooks.command != "");
        message = "services.panther-agent.resultHooks.command: give the program first (or leave it null for no command).";
      }
      # ---- END metrics and result hooks (assertions) ----
      # ---- BEGIN fleet cache (assertions) ----
      {
        assertion = cfg.fleetCache.secretKeyFile == null || !(lib.hasPrefix builtins.storeDir cfg.fleetCache.secretKeyFile);
        message = "services.panther-agent.fleetCache.secretKeyFile: the file is in the world-readable Nix store; give the path of a secret outside it.";
      }
      {
        assertion = cfg.fleetCache.secretKeyFile == null || cfg.tags != [ ];
        message = "services.panther-agent.fleetCache.secretKeyFile: the cache serves peers carrying the agent's own tags; set services.panther-agent.tags.";
      }
      # ---- END fleet cache (assertions) ----
      {
        assertion = builtins.all checkComplete cfg.healthChecks;
        message = "services.panther-agent.healthChecks: an http check needs url only, a tcp check address only, a command check command only.";
      }
    ];

    # Same store file as on the command line: /etc holds it for people and
    # tools, while ExecStart names the store path so that a config change
    # also changes the unit.
    environment.etc."panther/agent.json".source = checkedConfigFile;

    # `panther-agent check-config` and `version` for people on the host.
    environment.systemPackages = [ cfg.package ];

    systemd.tmpfiles.rules = lib.optional (!stateDirUnderVarLib) "d ${cfg.stateDir} 0700 root root -";

    systemd.services.panther-agent = {
      description = "panther deployment agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ config.nix.package config.systemd.package pkgs.git ];

      # The agent drives switch-to-configuration itself: a switch must never
      # stop or restart it halfway. A new agent package or config is checked
      # before the switch (the new binary's check-config) and the agent
      # restarts itself into it inside the confirmation window, once the new
      # system is healthy: only the new agent accepts the confirmation.
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
      # A configuration without this unit must not make
      # switch-to-configuration stop the agent mid-switch: nothing could
      # confirm or roll it back then (the agent also refuses such a
      # deploy unless forced).
      unitConfig.X-StopOnRemoval = false;

      serviceConfig = {
        ExecStart = "${cfg.package}/bin/panther-agent run --config ${checkedConfigFile}"
          + lib.optionalString (cfg.extraArgs != [ ]) " ${lib.escapeShellArgs cfg.extraArgs}";
        # The agent tells systemd it is ready once its tailnet listener is up.
        Type = "notify";
        NotifyAccess = "main";
        Restart = "always";
        RestartSec = "5s";
        # Stopping the agent kills only the agent. The switch itself runs in
        # its own transient unit (started over D-Bus) and is not affected
        # either way.
        KillMode = "process";

        # Hardening that leaves the agent able to do its job as root:
        # - ProtectHome: the agent only reads its state dir and the store;
        #   HOME points at the state dir (above).
        # - PrivateTmp: nothing is shared with other units through /tmp. The
        #   switch and dry-activate units do NOT share this /tmp, so the
        #   agent hands them files under stateDir, never under /tmp.
        # - NoNewPrivileges: the agent is root already and gains nothing
        #   from setuid or file capabilities. Nix is unaffected: builds run
        #   in nix-daemon and even a local-store nix only drops privileges
        #   (build users) and installs seccomp filters, which NNP permits.
        #   The switch and dry-activate run in transient units created by
        #   PID 1, which do not inherit NNP, so activation scripts and setuid
        #   wrappers behave as under nixos-rebuild.
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
