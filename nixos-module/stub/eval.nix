# Evaluates ../default.nix for one host module (../example.nix by default)
# with ./lib.nix in place of nixpkgs' lib and fake store paths in place of
# packages: a tiny module system that applies option defaults, type-checks
# definitions and rejects definitions of unknown options. It covers exactly
# what the module and the example use; ../render-example.sh and the flake's
# checks evaluate the same module with the real module system.
#
#   nix-instantiate --eval --strict --json nixos-module/stub/eval.nix -A rendered
#
# host is a module file, or a module function or attribute set (tests pass
# one with --arg). `checked` is the rendered config once every assertion
# holds and throws NixOS's "Failed assertions" message otherwise. With
# realBuild = true, writeText and runCommand make real derivations (built by
# /bin/sh with the machine's tools, so they need sandbox = false), and
# `configFile` is the file the unit uses: with checkConfig, the agent's own
# check-config runs in its build (set services.panther-agent.package to a
# directory holding bin/panther-agent). `optionsMarkdown` is the option
# reference docs/nixos-options.md (./options-doc.nix renders it).
{ host ? ../example.nix, realBuild ? false }:

let
  lib = import ./lib.nix;
  inherit (lib) mkOption types;

  fakeStorePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    writeText = name: text:
      if realBuild then builtins.toFile name text
      else { outPath = fakeStorePath name; inherit name text; };
    runCommand = name: env: script:
      if realBuild then
        derivation (env // {
          inherit name;
          system = builtins.currentSystem;
          builder = "/bin/sh";
          # stdenv runs builders with errexit.
          args = [ "-c" "set -e\n${script}" ];
          PATH = "/usr/bin:/bin";
        })
      else { outPath = fakeStorePath name; inherit name script; };
    formats.json = _: { type = lib.types.json; };
    stdenv = {
      buildPlatform.canExecute = _: true;
      hostPlatform = { };
    };
    git = fakeStorePath "git";
    panther-agent = fakeStorePath "panther-agent";
  };

  args = { inherit config lib pkgs; };
  agentModule = import ../default.nix args;
  hostModule =
    if builtins.isFunction host then host args
    else if builtins.isAttrs host then host
    else import host args;

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

  docs = import ./options-doc.nix {
    inherit lib;
    options = agentModule.options.services.panther-agent;
    prefix = "services.panther-agent";
  };
in
rec {
  inherit config;
  rendered = config.services.panther-agent.renderedConfig;
  json = builtins.toJSON rendered;
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (out.assertions or [ ]));
  # As NixOS's system.build.toplevel does with failed assertions.
  checked =
    if failedAssertions == [ ] then rendered
    else throw "\nFailed assertions:\n${builtins.concatStringsSep "\n" (map (m: "- ${m}") failedAssertions)}";
  configFile = etc."panther/agent.json".source;
  systemPackages = out.environment.systemPackages or [ ];
  meta = agentModule.meta or { };
  unit = out.systemd.services.panther-agent or null;
  # The module's option declarations (name, type, default, example,
  # description) and their Markdown reference (make option-docs).
  optionDocs = docs.declarations;
  optionsMarkdown = docs.markdown;
  etc = out.environment.etc or { };
  tmpfiles = out.systemd.tmpfiles.rules or [ ];
}
