# The VM test's agent host: the node starts from it, and every configuration
# the test deploys imports it too (from the panther source in the agent's
# store), so the agent keeps running, with the same package, across switches.
# Module argument pantherVersion: the panther version string, which must be
# the same in both places so that the package derivation is the same.
{ config, lib, pkgs, pantherVersion, ... }:

{
  imports = [ ../default.nix ];

  networking.hostName = "agent";

  services.panther-agent = {
    enable = true;
    package = pkgs.callPackage ../package.nix {
      version = pantherVersion;
      command = "panther-agent";
    };
    controlUrl = "https://headscale";
    authKeyFile = "/var/lib/panther-agent/authkey";
    trustedKeys = [ (import ./test-key.nix).public ];
    confirmTimeout = "30s";
    healthSettle = "2s";
    criticalUnits = [ "panther-agent.service" ];
    noLogsNoSupport = true;
    logLevel = "debug";
  };
  # Started by the test script once the auth key is in place.
  systemd.services.panther-agent.wantedBy = lib.mkForce [ ];

  security.pki.certificateFiles = [ "${import ./tls-cert.nix pkgs}/cert.pem" ];

  nix.settings = {
    experimental-features = [ "nix-command" "flakes" ];
    substituters = lib.mkForce [ ];
    flake-registry = "";
  };

  documentation.enable = false;
  environment.etc."panther-test-generation".text = lib.mkDefault "0";
  system.stateVersion = lib.trivial.release;
}
