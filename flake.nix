{
  description = "panther: deploy NixOS configurations to hosts over a tailnet, with automatic rollback";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      linuxSystems = [ "x86_64-linux" "aarch64-linux" ];
      allSystems = linuxSystems ++ [ "x86_64-darwin" "aarch64-darwin" ];
      forSystems = systems: f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      isLinux = pkgs: pkgs.stdenv.hostPlatform.isLinux;

      # Injected into internal/version.Version. It names the commit (or the dirty
      # tree) but not its date, so two checkouts of one commit build the same
      # derivation.
      version = "0-unstable-" + (self.shortRev or self.dirtyShortRev or "dirty");

      commandsFor = pkgs:
        let
          build = command: pkgs.callPackage ./nixos-module/package.nix { inherit version command; };
        in
        { pantherctl = build "pantherctl"; }
        // lib.optionalAttrs (isLinux pkgs) { panther-agent = build "panther-agent"; };

      # The module as rendered for nixos-module/example.nix by the real module
      # system, to compare with the agent's testdata.
      exampleSystem = system: lib.nixosSystem {
        inherit system;
        modules = [
          self.nixosModules.default
          ./nixos-module/example.nix
          { boot.isContainer = true; system.stateVersion = lib.trivial.release; }
        ];
      };
    in
    {
      # services.panther-agent, with the package defaulting to this flake's
      # build for the host's platform.
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nixos-module ];
        services.panther-agent.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.panther-agent;
      };
      nixosModules.panther-agent = self.nixosModules.default;

      # pkgs.pantherctl and pkgs.panther-agent, built with the user's nixpkgs.
      overlays.default = final: prev: commandsFor final;

      packages = forSystems allSystems (pkgs:
        let commands = commandsFor pkgs; in
        commands // { default = commands.pantherctl; });

      apps = forSystems allSystems (pkgs:
        let
          app = name: {
            type = "app";
            program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.${name}}/bin/${name}";
            meta.description = self.packages.${pkgs.stdenv.hostPlatform.system}.${name}.meta.description;
          };
        in
        { pantherctl = app "pantherctl"; default = app "pantherctl"; }
        // lib.optionalAttrs (isLinux pkgs) { panther-agent = app "panther-agent"; });

      # `nix fmt`: nixfmt over the tree (nixfmt-tree in current nixpkgs).
      formatter = forSystems allSystems (pkgs: pkgs.nixfmt-tree or pkgs.nixfmt-rfc-style);

      devShells = forSystems allSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.go_1_26
            pkgs.gopls
            pkgs.buf
            pkgs.protobuf
            pkgs.protoc-gen-go
            pkgs.protoc-gen-go-grpc
            pkgs.git
            pkgs.jq
          ] ++ lib.optionals (isLinux pkgs) [ pkgs.headscale ];
        };
      });

      checks = forSystems linuxSystems (pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
          rendered = pkgs.writeText "module-example.json"
            (builtins.toJSON (exampleSystem system).config.services.panther-agent.renderedConfig);
        in
        {
          inherit (self.packages.${system}) pantherctl panther-agent;

          # The committed rendering of the example host is what the real
          # module system renders (render-example.sh regenerates it).
          module-example = pkgs.runCommand "panther-module-example" { } ''
            diff -u ${./agent/config/testdata/module-example.json} ${rendered}
            touch $out
          '';

          # The example host evaluates and builds as a whole system.
          module-system = (exampleSystem system).config.system.build.toplevel;

          vm = import ./nixos-module/tests/vm.nix {
            inherit pkgs nixpkgs version;
            pantherSrc = self;
          };
        });
    };
}
