# A stand-in for the few parts of nixpkgs' lib that ../default.nix uses, so
# the module can be evaluated (and its rendered config checked) where no
# nixpkgs is available. Option types carry a `check` so ./eval.nix can
# type-check definitions the way the module system would, and a
# `description` worded as nixpkgs words it, for the option reference
# (./options-doc.nix).
let
  mkType = name: check: extra: { _type = "option-type"; inherit name check; description = name; } // extra;
  describe = t: t.description;

  ints = {
    positive = mkType "positive integer" (v: builtins.isInt v && v > 0) { description = "positive integer, meaning >0"; };
    unsigned = mkType "unsigned integer" (v: builtins.isInt v && v >= 0) { description = "unsigned integer, meaning >=0"; };
    between = lo: hi: mkType "integer between ${toString lo} and ${toString hi}"
      (v: builtins.isInt v && v >= lo && v <= hi) { description = "integer between ${toString lo} and ${toString hi} (both inclusive)"; };
  };

  types = {
    inherit ints;
    str = mkType "string" builtins.isString { };
    lines = mkType "lines" builtins.isString { description = "strings concatenated with \"\\n\""; };
    bool = mkType "boolean" builtins.isBool { };
    attrs = mkType "attribute set" builtins.isAttrs { };
    package = mkType "package" (v: builtins.isAttrs v || builtins.isString v) { };
    port = ints.between 0 65535;
    enum = values: mkType "one of ${builtins.concatStringsSep ", " values}"
      (v: builtins.elem v values) { description = "one of ${builtins.concatStringsSep ", " (map builtins.toJSON values)}"; };
    strMatching = re: mkType "string matching ${re}"
      (v: builtins.isString v && builtins.match re v != null) { description = "string matching the pattern ${re}"; };
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v) { elemType = t; description = "null or ${describe t}"; };
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v) { description = "${describe a} or ${describe b}"; };
    listOf = t: mkType "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v) { elemType = t; description = "list of ${describe t}"; };
    submodule = m: mkType "submodule" builtins.isAttrs { inherit (m) options; };
    # pkgs.formats.json's type: any JSON value.
    json = mkType "JSON value" (_: true) { };
  };
in
rec {
  inherit types;

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  mkPackageOption = pkgs: name: { extraDescription ? "" }: mkOption {
    type = types.package;
    default = pkgs.${name};
    defaultText = literalExpression "pkgs.${name}";
    description = "The ${name} package to use." + optionalString (extraDescription != "") " ${extraDescription}";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
  removePrefix = pre: s:
    if hasPrefix pre s
    then builtins.substring (builtins.stringLength pre) (builtins.stringLength s) s
    else s;
  optional = cond: x: if cond then [ x ] else [ ];
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  optionalAttrs = cond: as: if cond then as else { };
  optionalString = cond: s: if cond then s else "";
  escapeShellArg = arg:
    let s = toString arg; in
    if builtins.match "[[:alnum:],._+:@%/-]+" s != null then s
    else "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);
}
