# One panther command (panther-agent or pantherctl) built with Go. Shared by
# flake.nix (packages, overlay) and by the VM test's deployed flake, which
# must arrive at exactly the same derivation offline (same version string,
# same source, same vendored modules).
{ lib, buildGo126Module, version, command }:

let
  subPackages = {
    panther-agent = "agent/cmd/panther-agent";
    pantherctl = "controller/cmd/pantherctl";
  };
  descriptions = {
    panther-agent = "panther's deployment agent: builds, switches and rolls back this NixOS host on signed request";
    pantherctl = "panther's controller CLI: deploys NixOS configurations to panther agents over the tailnet";
  };
in
assert lib.assertOneOf "command" command (builtins.attrNames subPackages);
buildGo126Module {
  pname = command;
  inherit version;

  # An allow-list: the Go module (every package, with the files they embed)
  # and nothing else, so editing the docs, the Nix files, the Makefile or a
  # README does not rebuild the agent. A new top-level Go directory must be
  # added here (the vendor hash covers the imports of every package).
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.difference
      (lib.fileset.unions [
        ../go.mod
        ../go.sum
        ../agent
        ../controller
        ../pkg
        ../proto
        ../examples
      ])
      (lib.fileset.fileFilter (file: file.hasExt "md") ../.);
  };

  # Hash of `go mod vendor` for the whole module. Refresh it after go.mod,
  # go.sum or the set of imported packages changes: `make vendor-hash` prints
  # it offline from the Go module cache (go mod vendor into a scratch
  # directory, then nix hash path). nixos-module's TestVendorHashMatchesGoMod
  # fails when this line is stale.
  vendorHash = "sha256-IUTScXUcWhAtke4SUiZXYHzwNvgfLbuafqsToG9AUos=";

  subPackages = [ subPackages.${command} ];
  env.CGO_ENABLED = "0";
  # Removes tsnet's PeerAPI server, which would otherwise listen on a TCP port
  # on all of the host's interfaces (the agent is reachable on the tailnet only).
  tags = [ "ts_omit_peerapiserver" ];
  ldflags = [
    "-s"
    "-w"
    "-X github.com/pantheros/panther/pkg/version.Version=${version}"
  ];
  # The tests need root, nix, a systemd sandbox or an in-process tailnet;
  # CI runs them (.ci/run), the package build does not.
  doCheck = false;

  meta = {
    description = descriptions.${command};
    mainProgram = command;
    platforms = if command == "panther-agent" then lib.platforms.linux else lib.platforms.unix;
  };
}
