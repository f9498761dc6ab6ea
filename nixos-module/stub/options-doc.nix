# Renders option declarations (as ./eval.nix gets them from ../default.nix)
# into the Markdown reference docs/nixos-options.md: one section per visible
# option, sorted by name as the NixOS manual sorts them, with its type,
# default (defaultText when the module gives one), example and description.
# Options inside a list of submodules appear as `<list>.*.<name>`.
#
#   make option-docs
#
# declarations: the list from `declarations` below, built by ./eval.nix;
# it is also exposed there as `optionDocs` (JSON) for tests and tools.
{ lib, options, prefix }:

let
  hasNewline = s: builtins.length (builtins.split "\n" s) > 1;
  # trimEnd s: s without its trailing newlines ('' strings end with one).
  trimEnd = s:
    let n = builtins.stringLength s; in
    if n > 0 && builtins.substring (n - 1) 1 s == "\n" then trimEnd (builtins.substring 0 (n - 1) s) else s;
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];

  isOption = v: builtins.isAttrs v && (v._type or null) == "option";
  literal = v: builtins.isAttrs v && (v._type or null) == "literalExpression";

  # toNix v: v as a Nix expression on one line (lib.generators.toPretty
  # without its indentation), literal expressions as they are written.
  toNix = v:
    if literal v then v.text
    else if builtins.isString v then
      "\"" + builtins.replaceStrings [ "\\" "\"" "\n" "\r" "\t" "\${" ] [ "\\\\" "\\\"" "\\n" "\\r" "\\t" "\\\${" ] v + "\""
    else if builtins.isBool v then (if v then "true" else "false")
    else if v == null then "null"
    else if builtins.isInt v || builtins.isFloat v then builtins.toJSON v
    else if builtins.isPath v then toString v
    else if builtins.isList v then
      (if v == [ ] then "[ ]" else "[ " + builtins.concatStringsSep " " (map toNix v) + " ]")
    else if builtins.isAttrs v then
      (if v == { } then "{ }" else
      "{ " + builtins.concatStringsSep " " (map
        (n: "${if builtins.match "[A-Za-z_][A-Za-z0-9_'-]*" n != null then n else toNix n} = ${toNix v.${n}};")
        (builtins.attrNames v)) + " }")
    else throw "options-doc.nix: cannot render ${builtins.typeOf v} as Nix";

  # walk loc opts: the declarations under opts, loc being their name prefix.
  walk = loc: opts: builtins.concatMap
    (n:
      let o = opts.${n}; name = "${loc}.${n}"; in
      if !isOption o then walk name o
      else
        [({
          inherit name;
          type = o.type.description or o.type.name;
          description = trimEnd (o.description or "");
          internal = o.internal or false;
          readOnly = o.readOnly or false;
        }
        // lib.optionalAttrs (o ? defaultText || o ? default) { default = toNix (o.defaultText or o.default); }
        // lib.optionalAttrs (o ? example) { example = toNix o.example; })]
        # A list of submodules: its options, under <name>.*.
        ++ (if (o.type.elemType.options or null) != null then walk "${name}.*" o.type.elemType.options else [ ]))
    (builtins.attrNames opts);

  declarations = walk prefix options;
  visible = builtins.filter (d: !d.internal) declarations;

  # escape s: s as Markdown text (types show regular expressions).
  escape = builtins.replaceStrings [ "\\" "*" "_" "[" "]" "<" "`" ] [ "\\\\" "\\*" "\\_" "\\[" "\\]" "&lt;" "\\`" ];

  code = s:
    if hasNewline s then "\n\n```nix\n${s}\n```"
    else " `${s}`";

  section = d: builtins.concatStringsSep "\n\n" ([
    "## `${d.name}`"
    d.description
    "*Type:* ${escape d.type}${lib.optionalString d.readOnly " (read only)"}"
  ]
  ++ lib.optional (d ? default) "*Default:*${code d.default}"
  ++ lib.optional (d ? example) "*Example:*${code d.example}");

  markdown = ''
    # NixOS module options

    <!-- Generated from nixos-module/default.nix by `make option-docs`; do not edit. -->

    The options of the NixOS module `services.panther-agent` (the flake's
    `nixosModules.default`); [nixos.md](nixos.md) shows how to use it. Every
    option except `enable`, `package`, `checkConfig`, `settings` and `extraArgs`
    is rendered under the same name into the agent's config file
    (`/etc/panther/agent.json`); options left `null` are dropped, so the agent
    applies its own default.

    ${builtins.concatStringsSep "\n" (map (d: "- [`${d.name}`](#${anchor d.name})") visible)}

    ${builtins.concatStringsSep "\n\n" (map section visible)}
  '';

  # GitHub's heading anchor: lower case, punctuation other than '-' and '_'
  # dropped.
  anchor = name: builtins.replaceStrings ([ "." "*" ] ++ upper) ([ "" "" ] ++ lower) name;
in
{
  inherit declarations markdown;
}
