# The panther lab flake: NixOS-shaped hosts without nixpkgs or any input.
#
# hosts.json maps each host to a variant ("<variant>+<salt>": the variant,
# built afresh); lab.json holds the system, the network namespace of the
# test runner (switch never touches links there) and optionally agentUnit,
# the text of a panther-agent.service every system installs (but no-agent).
# nixosConfigurations.<host>.config.system.build.toplevel is a real
# derivation built by /bin/sh in ~0.1 s; its bin/switch-to-configuration
# does real systemd work (see switch-to-configuration.sh).
{
  description = "panther lab test flake (no inputs)";

  outputs = { self }:
    let
      lab = builtins.fromJSON (builtins.readFile ./lab.json);
      hosts = builtins.fromJSON (builtins.readFile ./hosts.json);

      # unit <name> <file>: a unit file stored under its unit name.
      unit = name: file: builtins.path { path = file; inherit name; };
      hello = unit "lab-hello.service" ./units/lab-hello.service;
      helloV2 = unit "lab-hello.service" ./units/lab-hello-v2.service;
      helloV3 = unit "lab-hello.service" ./units/lab-hello-v3.service;
      greeter = unit "lab-greeter.service" ./units/lab-greeter.service;
      broken = unit "lab-broken.service" ./units/lab-broken.service;
      web = unit "lab-web.service" ./units/lab-web.service;
      webBroken = unit "lab-web.service" ./units/lab-web-broken.service;
      hang = unit "lab-hang.service" ./units/lab-hang.service;
      extra = unit "lab-extra.service" ./units/lab-extra.service;
      base = [ hello greeter ];

      # labTool <version> <KiB>: a package in the system's closure (the
      # toplevel's sw/lab-packages refers to it), so that diff-closures
      # shows "lab-tool: <old> → <new>" with a size change.
      labTool = version: kib: derivation {
        name = "lab-tool-${version}";
        system = lab.system;
        builder = "/bin/sh";
        args = [ "-c" "/usr/bin/head -c ${toString (kib * 1024)} /dev/zero >$out" ];
      };

      # Every variant: the units it installs plus what makes it special
      # (features: lab behaviours of switch-to-configuration.sh).
      variants = {
        good = { units = base; };
        good-v2 = { units = [ helloV2 greeter ]; };
        # As good-v2; every evaluation of the host prints TraceLine on
        # stderr (builtins.trace), so a test counts the evaluations.
        traced = { units = [ helloV2 greeter ]; trace = true; };
        no-restart = { units = [ helloV3 greeter ]; };
        build-fail = { units = base; failBuild = true; };
        eval-error = { units = base; evalError = true; };
        warnings = {
          units = base;
          warnings = [
            "lab warning one: services.lab-hello uses a deprecated option"
            "lab warning two: networking.lab is not set"
          ];
        };
        dry-fail = { units = base; features = [ "dry-fail" ]; };
        unit-fail = { units = base ++ [ broken ]; };
        activation-fail = { units = base; features = [ "fail-activation" ]; };
        # A new init interface: switch sets the boot default and exits 100.
        reboot-required = { units = base; initInterfaceVersion = "systemd-lab-2"; };
        new-kernel = { units = base; kernelVersion = "6.12.0-lab"; };
        inhibited = { units = base; inhibitors = "lab-critical-component 2"; };
        specialised = { units = base; specialisation = "lab-extra"; specialisationUnits = [ extra ]; };
        hang-switch = { units = base ++ [ hang ]; features = [ "hang-switch" ]; };
        restart-agent = { units = base; features = [ "restart-agent" ]; };
        # The activation reboots the host (systemctl reboot) after starting units.
        reboot-switch = { units = base; features = [ "reboot-switch" ]; };
        # With an agent unit in the flake (lab.json agentUnit, see
        # nixtest.SetAgentUnit): a system without it, and one whose changed
        # agent unit a switch would stop and start.
        no-agent = { units = base; agent = "none"; };
        stops-agent = { units = base; agent = "stops"; };
        # The agent's unit with arguments added to its ExecStart: a new
        # agent config that the new agent accepts, one it refuses
        # (check-config), and one it accepts but that keeps it off the
        # tailnet (a coordination server that does not answer).
        agent-changed = { units = base; agent = "args:--log-level info"; };
        agent-refused = { units = base; agent = "args:--confirm-timeout 100h"; };
        agent-unreachable = { units = base; agent = "args:--control-url http://127.0.0.1:9"; };
        cut-network = { units = base; features = [ "cut-network" ]; };
        cut-control = { units = base; features = [ "cut-control" ]; };
        web-ok = { units = base ++ [ web ]; };
        web-broken = { units = base ++ [ webBroken ]; };
        # Slow steps, for tests that act in the middle of one (seconds).
        slow-build = { units = base; delays.buildDelay = 8; };
        slow-dry = { units = base; delays.dryDelay = 8; };
        slow-switch = { units = base; delays.switchDelay = 4; };
        # A package in the closure: lab-tool 1.0 (16 KiB), then 1.1 (48 KiB)
        # with lab-hello changed (the fleet diff's packages and units).
        tool-v1 = { units = base; packages = [ (labTool "1.0" 16) ]; };
        tool-v2 = { units = [ helloV2 greeter ]; packages = [ (labTool "1.1" 48) ]; };
      };

      toplevel = host: variant: salt: v:
        let
          # A salt ("<variant>+<salt>" in hosts.json) makes a new store path
          # that nix must build again; the delays make a step slow.
          extra = (if salt == "" then { } else { inherit salt; })
            // builtins.mapAttrs (_: toString) (v.delays or { });
          drv = derivation ({
            # No "-<letters>" at the end: nix would read it as an output
            # name (diff-closures strips it from the version).
            name = "nixos-system-${host}-26.05.lab_${builtins.replaceStrings [ "-" ] [ "_" ] variant}";
            system = lab.system;
            builder = "/bin/sh";
            args = [ ./builder.sh ];
            inherit host variant;
            version = "26.05.lab-${variant} (Panther Lab)";
            units = v.units;
            switchScript = ./switch-to-configuration.sh;
            activateScript = ./activate.sh;
            webServer = ./web/server.py;
            failBuild = if v.failBuild or false then "1" else "";
            runnerNetns = lab.runnerNetns;
            features = v.features or [ ];
            initInterfaceVersion = v.initInterfaceVersion or "systemd";
            kernelVersion = v.kernelVersion or "6.6.0-lab";
            inhibitors = v.inhibitors or "";
            specialisation = v.specialisation or "";
            specialisationUnits = v.specialisationUnits or [ ];
            agentUnit = lab.agentUnit or "";
            agentMode = v.agent or "keep";
          } // extra // (if v ? packages then { inherit (v) packages; } else { }));
          # Print the warnings as NixOS does when the toplevel is forced
          # (foldl' is strict, so they come out in list order).
          warn = x: w: builtins.trace "warning: ${w}" x;
        in
        if v.evalError or false
        then throw "panther lab: evaluation of ${host} fails on purpose (variant eval-error)"
        else builtins.foldl' warn drv (v.warnings or [ ]);

      host = name: spec:
        let
          salted = builtins.match "([^+]*)[+](.*)" spec;
          variant = if salted == null then spec else builtins.elemAt salted 0;
          salt = if salted == null then "" else builtins.elemAt salted 1;
          v = variants.${variant} or (throw "panther lab: host ${name} has unknown variant ${variant}");
          traced = x: if v.trace or false then builtins.trace "panther-lab: evaluating ${name}" x else x;
        in
        traced {
          config = {
            networking.hostName = name;
            system.nixos.version = "26.05.lab-${variant}";
            warnings = v.warnings or [ ];
            system.build.toplevel = toplevel name variant salt v;
          };
        };
    in
    {
      nixosConfigurations = builtins.mapAttrs host hosts;
      lab.variants = builtins.attrNames variants;
    };
}
