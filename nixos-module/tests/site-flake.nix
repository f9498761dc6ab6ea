# The flake the VM test's controller deploys to the agent (a template: the
# test fills in the @...@ values). Its inputs are store paths already in the
# agent's store, so the agent can build it offline: nixpkgs, and the panther
# source as plain files (flake = false, so panther's own inputs are never
# fetched). The host is assembled the way the test framework assembles the
# node: qemu-vm and test-instrumentation, the framework's network settings
# (network.json), the shared agent host, and one generation module.
{
  inputs = {
    nixpkgs.url = "path:@nixpkgs@";
    panther = {
      url = "path:@panther@";
      flake = false;
    };
  };

  outputs = { self, nixpkgs, panther }: {
    nixosConfigurations.agent = import "${nixpkgs}/nixos/lib/eval-config.nix" {
      system = "@system@";
      modules = [
        ({ modulesPath, ... }: {
          imports = [
            (modulesPath + "/virtualisation/qemu-vm.nix")
            (modulesPath + "/testing/test-instrumentation.nix")
          ];
        })
        (nixpkgs.lib.modules.importJSON ./network.json)
        "${panther}/nixos-module/tests/agent-host.nix"
        ./generation.nix
        {
          _module.args.pantherVersion = "@version@";
          system.configurationRevision = self.rev or self.dirtyRev or null;
        }
      ];
    };
  };
}
