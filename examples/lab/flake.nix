# The panther lab flake: three NixOS-shaped hosts without nixpkgs or any
# input, so `pantherctl lab demo` needs no network and builds in ~0.1 s.
#
# hosts.json picks each host's variant; edit it (or let the lab do it) to
# change what a deploy switches to. lab.json holds the nix system and the
# network namespace the lab itself runs in, where switch never touches links.
#
# nixosConfigurations.<host>.config.system.build.toplevel is a real
# derivation built by /bin/sh, shaped like a NixOS system (nixos-version,
# init-interface-version, kernel, initrd, activate, ...); its
# bin/switch-to-configuration keeps the contract of NixOS's
# switch-to-configuration-ng and does real systemd work inside the lab's
# sandboxed hosts (see switch-to-configuration.sh). Never deploy it to a
# real machine.
{
  description = "panther lab: example hosts for pantherctl (no inputs)";

  outputs = { self }:
    let
      lab = builtins.fromJSON (builtins.readFile ./lab.json);
      hosts = builtins.fromJSON (builtins.readFile ./hosts.json);

      # unit <name> <file>: a unit file stored under its unit name.
      unit = name: file: builtins.path { path = file; inherit name; };
      hello = unit "lab-hello.service" ./units/lab-hello.service;
      helloV2 = unit "lab-hello.service" ./units/lab-hello-v2.service;
      greeter = unit "lab-greeter.service" ./units/lab-greeter.service;
      broken = unit "lab-broken.service" ./units/lab-broken.service;

      # What each variant installs and does when it is switched to.
      variants = {
        # Two long-running services.
        good = { units = [ hello greeter ]; };
        # lab-hello changed: a switch from good restarts it.
        v2 = { units = [ helloV2 greeter ]; };
        # lab-broken fails to start: the switch reports it, health fails and
        # the agent rolls back at once.
        broken = { units = [ hello greeter broken ]; };
        # Activation takes every network link but lo down, like a firewall or
        # network change that locks you out: pantherctl cannot confirm, and
        # the agent's dead-man switch rolls back when the window closes.
        cut-network = { units = [ hello greeter ]; features = [ "cut-network" ]; };
      };

      toplevel = host: variant: v: derivation {
        # No "-<letters>" at the end: nix would read it as an output name.
        name = "nixos-system-${host}-26.05.lab_${builtins.replaceStrings [ "-" ] [ "_" ] variant}";
        system = lab.system;
        builder = "/bin/sh";
        args = [ ./builder.sh ];
        inherit host variant;
        version = "26.05.lab-${variant} (Panther Lab)";
        units = v.units;
        # builder.sh, switch-to-configuration.sh and activate.sh are the
        # panther test flake's (a test keeps them identical).
        features = v.features or [ ];
        switchScript = ./switch-to-configuration.sh;
        activateScript = ./activate.sh;
        runnerNetns = lab.labNetns;
      };

      host = name: variant:
        let
          v = variants.${variant} or (throw "panther lab: host ${name} has unknown variant ${variant} (known: ${builtins.concatStringsSep ", " (builtins.attrNames variants)})");
        in
        {
          config = {
            networking.hostName = name;
            system.nixos.version = "26.05.lab-${variant}";
            warnings = [ ];
            system.build.toplevel = toplevel name variant v;
          };
        };
    in
    {
      nixosConfigurations = builtins.mapAttrs host hosts;
      lab.variants = builtins.attrNames variants;
    };
}
