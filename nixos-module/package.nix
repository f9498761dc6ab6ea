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

  # The Go module only: editing the Nix files or the docs does not rebuild.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.difference ../. (lib.fileset.unions [
      ./.
      ../flake.nix
      (lib.fileset.maybeMissing ../flake.lock)
      (lib.fileset.maybeMissing ../docs)
      (lib.fileset.maybeMissing ../.git)
    ]);
  };

  # Hash of `go mod vendor` for the whole module. Refresh it after go.mod,
  # go.sum or the set of imported packages changes:
  #   - with network: set it to lib.fakeHash, run `nix build .#panther-agent`
  #     and copy the hash from the "got:" line;
  #   - offline, from a filled module cache: in a scratch copy of the repo run
  #     `GOFLAGS=-mod=mod go mod vendor -o /tmp/vendor && nix hash path /tmp/vendor`.
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
