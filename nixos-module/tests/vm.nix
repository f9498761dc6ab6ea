# End-to-end NixOS VM test (flake check `vm`): a Headscale node, a controller
# node running pantherctl and an agent node running panther-agent.
#   1. Both panther nodes join the tailnet with tagged auth keys.
#   2. The controller deploys a good configuration and confirms it.
#   3. The controller deploys a configuration that removes the agent's network
#      address; no confirmation can arrive, so the agent rolls itself back and
#      comes back on the tailnet with the good generation.
#
# The agent builds each deployed flake itself, offline: its store holds the
# nixpkgs and panther sources (extraDependencies) and the build inputs of its
# own system (includeBuildDependencies), which the deployed generations share
# except for a few small derivations.
{ pkgs, nixpkgs, pantherSrc, version }:

let
  inherit (pkgs) lib;
  system = pkgs.stdenv.hostPlatform.system;
  tlsCert = import ./tls-cert.nix pkgs;
  testKey = import ./test-key.nix;
  pantherctl = pkgs.callPackage ../package.nix { inherit version; command = "pantherctl"; };

  # Headscale's ACL policy: the tags panther uses, owned by the test user,
  # and the one flow panther needs (controller to agent, gRPC port).
  policy = pkgs.writeText "policy.json" (builtins.toJSON {
    tagOwners = {
      "tag:panther-controller" = [ "panther@" ];
      "tag:panther-agent" = [ "panther@" ];
    };
    acls = [
      {
        action = "accept";
        src = [ "tag:panther-controller" ];
        dst = [ "tag:panther-agent:7443" ];
      }
    ];
  });

  siteFlake = pkgs.writeText "flake.nix"
    (builtins.replaceStrings
      [ "@nixpkgs@" "@panther@" "@system@" "@version@" ]
      [ "${nixpkgs}" "${pantherSrc}" system version ]
      (builtins.readFile ./site-flake.nix));

  privateKey = pkgs.writeText "panther-test-key" (testKey.private + "\n");
in
pkgs.testers.runNixOSTest {
  name = "panther";

  nodes = {
    headscale = {
      services.headscale = {
        enable = true;
        port = 8080;
        settings = {
          server_url = "https://headscale";
          prefixes.v4 = "100.64.0.0/10";
          dns = {
            magic_dns = false;
            override_local_dns = false;
            base_domain = "panther.test";
          };
          # No DERP map from the internet: the embedded relay only.
          derp = {
            urls = [ ];
            server = {
              enabled = true;
              region_id = 999;
              stun_listen_addr = "0.0.0.0:3478";
            };
          };
          policy.path = policy;
        };
      };
      services.nginx = {
        enable = true;
        virtualHosts.headscale = {
          addSSL = true;
          sslCertificate = "${tlsCert}/cert.pem";
          sslCertificateKey = "${tlsCert}/key.pem";
          locations."/" = {
            proxyPass = "http://127.0.0.1:8080";
            proxyWebsockets = true;
          };
        };
      };
      networking.firewall = {
        allowedTCPPorts = [ 80 443 ];
        allowedUDPPorts = [ 3478 ];
      };
      environment.systemPackages = [ pkgs.headscale pkgs.jq ];
    };

    controller = {
      environment.systemPackages = [ pantherctl ];
      security.pki.certificateFiles = [ "${tlsCert}/cert.pem" ];
    };

    agent = { nodes, ... }: {
      imports = [ ./agent-host.nix ];
      _module.args.pantherVersion = version;
      virtualisation = {
        memorySize = 3072;
        cores = 2;
        diskSize = 4096;
      };
      system.includeBuildDependencies = true;
      system.extraDependencies = [ "${nixpkgs}" "${pantherSrc}" ];
    };
  };

  testScript = { nodes, ... }:
    let
      networkJSON = pkgs.writeText "network.json"
        (builtins.toJSON nodes.agent.system.build.networkConfig);
    in
    ''
      import json

      start_all()

      with subtest("tailnet: Headscale with a user and tagged auth keys"):
          headscale.wait_for_unit("headscale.service")
          headscale.wait_for_open_port(443)
          headscale.succeed("headscale users create panther")
          uid = headscale.succeed(
              "headscale users list -o json | jq -r '.[] | select(.name == \"panther\") | .id'"
          ).strip()

          def auth_key(tag):
              out = headscale.succeed(
                  f"headscale preauthkeys create --user {uid} --reusable --expiration 1h --tags {tag} -o json"
              )
              return json.loads(out)["key"]

          agent_key = auth_key("tag:panther-agent")
          controller_key = auth_key("tag:panther-controller")

      with subtest("the agent joins the tailnet"):
          agent.succeed(f"install -D -m 600 /dev/stdin /var/lib/panther-agent/authkey <<< '{agent_key}'")
          agent.succeed("systemctl start panther-agent.service")
          agent.wait_for_unit("panther-agent.service")
          agent.succeed("test -L /etc/panther/agent.json")

      ctl = (
          "pantherctl --control-url https://headscale --auth-key-file /root/authkey"
          " --key /root/panther-key --state-dir /root/pantherctl-tsnet"
          " --hostname controller --no-logs-no-support"
      )

      with subtest("the controller reaches the agent"):
          controller.succeed(f"install -D -m 600 /dev/stdin /root/authkey <<< '{controller_key}'")
          controller.succeed("install -D -m 600 ${privateKey} /root/panther-key")
          controller.succeed("pantherctl pubkey --key /root/panther-key | grep -qx '${testKey.public}'")
          controller.wait_until_succeeds(f"{ctl} status agent >&2", timeout=180)

      for name, generation in [("good", "${./generation-good.nix}"), ("broken", "${./generation-broken.nix}")]:
          controller.succeed(f"mkdir -p /root/site-{name}")
          controller.copy_from_host("${siteFlake}", f"/root/site-{name}/flake.nix")
          controller.copy_from_host("${networkJSON}", f"/root/site-{name}/network.json")
          controller.copy_from_host(generation, f"/root/site-{name}/generation.nix")

      with subtest("a good configuration is deployed and confirmed"):
          controller.succeed(f"{ctl} deploy agent --flake /root/site-good --yes --log-dir /root/logs >&2")
          agent.succeed("grep -qx 1 /etc/panther-test-generation")
          good = agent.succeed("readlink -f /run/current-system").strip()
          # Still there after the confirmation window.
          agent.sleep(40)
          agent.succeed(f"test \"$(readlink -f /run/current-system)\" = {good}")

      with subtest("a configuration that cuts the network is rolled back"):
          status, out = controller.execute(f"{ctl} deploy agent --flake /root/site-broken --yes --log-dir /root/logs >&2")
          # pantherctl's exit code 4: the host switched, then rolled back.
          assert status == 4, f"deploy of the broken configuration exited {status}, want 4 (rolled back)"
          agent.wait_until_succeeds(f"test \"$(readlink -f /run/current-system)\" = {good}", timeout=300)
          agent.succeed("grep -qx 1 /etc/panther-test-generation")
          controller.wait_until_succeeds(f"{ctl} status agent >&2", timeout=300)

      with subtest("the generations are listed"):
          controller.succeed(f"{ctl} rollback agent --list >&2")
    '';
}
