# An example host for services.panther-agent. What the module renders for it
# is committed as agent/config/testdata/module-example.json, which the agent
# config's tests load and which `go test ./agent/config` and the flake's
# checks compare with a fresh rendering; regenerate it with
# nixos-module/render-example.sh after changing this file or the module.
#
# Rendered (builtins.toJSON sorts the keys and writes one line; shown
# pretty-printed here), with the defaults of every option left unset:
# BEGIN rendered (kept up to date by render-example.sh)
#   {
#     "allowedTags": [
#       "tag:panther-controller"
#     ],
#     "allowedUsers": [
#       "alice@example.com"
#     ],
#     "authKeyFile": "/run/secrets/panther-authkey",
#     "confirmTimeout": 90,
#     "controlUrl": "https://headscale.example.com",
#     "criticalUnits": [
#       "nginx.service"
#     ],
#     "flakeHost": "web1",
#     "healthChecks": [
#       {
#         "interval": "2s",
#         "name": "web",
#         "retries": 3,
#         "timeout": "5s",
#         "type": "http",
#         "url": "http://127.0.0.1/healthz"
#       },
#       {
#         "address": "127.0.0.1:5432",
#         "interval": "2s",
#         "name": "db",
#         "retries": 0,
#         "timeout": "2s",
#         "type": "tcp"
#       },
#       {
#         "command": [
#           "/run/current-system/sw/bin/test",
#           "-w",
#           "/var/spool"
#         ],
#         "interval": "2s",
#         "name": "spool-writable",
#         "retries": 0,
#         "timeout": "5s",
#         "type": "command"
#       }
#     ],
#     "healthSettle": "5s",
#     "hostName": "web1",
#     "logJSON": true,
#     "logLevel": "info",
#     "logRetention": 50,
#     "maxConfirmTimeout": "15m",
#     "maxUploadBytes": 1073741824,
#     "nixExtraConfig": "max-jobs = 2",
#     "noLogsNoSupport": true,
#     "port": 7443,
#     "profile": "/nix/var/nix/profiles/system",
#     "stateDir": "/var/lib/panther-agent",
#     "switchTimeout": "10m",
#     "tags": [
#       "tag:panther-agent"
#     ],
#     "trustedKeys": [
#       "panther-ed25519:ziNh8gNkF3ILRVEAspoHseQjpJeqbXQb+j8442Qd1ao="
#     ],
#     "unitName": "panther-agent.service"
#   }
# END rendered
{ ... }:
{
  networking.hostName = "web1";

  services.panther-agent = {
    enable = true;
    controlUrl = "https://headscale.example.com";
    authKeyFile = "/run/secrets/panther-authkey";
    allowedUsers = [ "alice@example.com" ];
    # Example key; never trust a key you did not generate yourself.
    trustedKeys = [ "panther-ed25519:ziNh8gNkF3ILRVEAspoHseQjpJeqbXQb+j8442Qd1ao=" ];
    confirmTimeout = 90;
    criticalUnits = [ "nginx.service" ];
    healthChecks = [
      {
        name = "web";
        type = "http";
        url = "http://127.0.0.1/healthz";
        retries = 3;
      }
      {
        name = "db";
        type = "tcp";
        address = "127.0.0.1:5432";
        timeout = "2s";
      }
      {
        name = "spool-writable";
        type = "command";
        command = [ "/run/current-system/sw/bin/test" "-w" "/var/spool" ];
      }
    ];
    nixExtraConfig = "max-jobs = 2";
    logJSON = true;
    extraArgs = [ "--log-level=debug" ];
  };
}
