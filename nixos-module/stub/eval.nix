# Evaluates ../default.nix for one host module (../example.nix by default)
# with ./lib.nix in place of nixpkgs' lib and fake store paths in place of
# packages: a tiny module system that applies option defaults, type-checks
# definitions and rejects definitions of unknown options. It covers exactly
# what the module and the example use; ../render-example.sh and the flake's
# checks evaluate the same module with the real module system.
#
#   nix-instantiate --eval --strict --json nixos-module/stub/eval.nix -A rendered
{ host ? ../example.nix }:

let
  lib = import ./lib.nix;
  inherit (lib) mkOption types;

  fakeStorePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    writeText = name: text: { outPath = fakeStorePath name; inherit name text; };
    git = fakeStorePath "git";
    panther-agent = fakeStorePath "panther-agent";
  };

  args = { inherit config lib pkgs; };
  agentModule = import ../default.nix args;
  hostModule = import host args;

  # The options of the rest of NixOS that the module reads.
  nixosOptions = {
    networking.hostName = mkOption { type = types.str; default = "nixos"; };
    nix.package = mkOption { type = types.package; default = fakeStorePath "nix"; };
    systemd.package = mkOption { type = types.package; default = fakeStorePath "systemd"; };
  };
  options = nixosOptions // {
    services = agentModule.options.services;
  };

  isOption = v: builtins.isAttrs v && (v._type or null) == "option";

  resolve = loc: opts: defs:
    let
      unknown = builtins.filter (n: !(opts ? ${n})) (builtins.attrNames defs);
    in
    if unknown != [ ] then throw "${loc}${builtins.head unknown}: no such option"
    else builtins.mapAttrs (n: o: value "${loc}${n}" o (defs ? ${n}) (defs.${n} or null)) opts;

  value = loc: opt: defined: def:
    if !isOption opt then resolve "${loc}." opt (if defined then def else { })
    else if defined && (opt.readOnly or false) then throw "${loc}: read-only"
    else
      let
        v =
          if defined then def
          else if opt ? default then opt.default
          else throw "${loc}: used but not defined";
      in
      if opt.type.check v then elaborate loc opt.type v
      else throw "${loc}: not a ${opt.type.name}: ${builtins.toJSON v}";

  # A list of submodules gets each element's defaults and checks.
  elaborate = loc: type: v:
    if (type.elemType.options or null) != null && builtins.isList v then
      builtins.genList (i: resolve "${loc}.[${toString i}]." type.elemType.options (builtins.elemAt v i))
        (builtins.length v)
    else v;

  config = resolve "" options hostModule;

  unIf = v: if (v._type or null) == "if" then (if v.condition then unIf v.content else { }) else v;
  out = unIf agentModule.config;
in
rec {
  inherit config;
  rendered = config.services.panther-agent.renderedConfig;
  json = builtins.toJSON rendered;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (out.assertions or [ ]));
  unit = out.systemd.services.panther-agent or null;
  etc = out.environment.etc or { };
  tmpfiles = out.systemd.tmpfiles.rules or [ ];
}
