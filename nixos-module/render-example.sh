#!/usr/bin/env bash
# Regenerates agent/config/testdata/module-example.json, exactly what
# nixos-module/default.nix renders into /etc/panther/agent.json for the host
# in nixos-module/example.nix, and the pretty copy in example.nix's header.
#
# Usage: nixos-module/render-example.sh [--check] [--stub] [NIXPKGS]
#   NIXPKGS  a nixpkgs source tree (default: <nixpkgs> from NIX_PATH). The
#            module is evaluated by the real NixOS module system:
#            nix eval --json of config.services.panther-agent.renderedConfig.
#   --stub   evaluate with the offline stand-in in nixos-module/stub instead
#            (also the fallback when no nixpkgs is found).
#   --check  compare instead of writing; exit 1 when anything is out of date.
# Needs nix (and jq for the pretty copy in example.nix).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$root/agent/config/testdata/module-example.json"
example="$here/example.nix"

check=false
stub=false
nixpkgs=""
for arg in "$@"; do
	case "$arg" in
	--check) check=true ;;
	--stub) stub=true ;;
	-h | --help)
		sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "render-example.sh: unknown option $arg" >&2
		exit 2
		;;
	*) nixpkgs=$arg ;;
	esac
done

if ! $stub && [ -z "$nixpkgs" ]; then
	nixpkgs=$(nix-instantiate --find-file nixpkgs 2>/dev/null || true)
	if [ -z "$nixpkgs" ]; then
		echo "render-example.sh: no nixpkgs on NIX_PATH and none given; using the offline stub" >&2
		stub=true
	fi
fi

if $stub; then
	json=$(nix-instantiate --eval --strict --json "$here/stub/eval.nix" -A rendered)
else
	export NIX_CONFIG="extra-experimental-features = nix-command flakes${NIX_CONFIG:+
$NIX_CONFIG}"
	json=$(PANTHER_MODULE_DIR="$here" PANTHER_NIXPKGS="$nixpkgs" nix eval --json --impure --expr '
		let
			dir = /. + builtins.getEnv "PANTHER_MODULE_DIR";
			nixos = import (/. + builtins.getEnv "PANTHER_NIXPKGS" + "/nixos/lib/eval-config.nix") {
				system = builtins.currentSystem;
				modules = [
					(dir + "/default.nix")
					(dir + "/example.nix")
					{ boot.isContainer = true; system.stateVersion = "25.05"; }
				];
			};
		in nixos.config.services.panther-agent.renderedConfig')
fi

# The pretty copy between the BEGIN/END rendered lines of example.nix.
render_comment() {
	awk -v pretty="$1" '
		/^# BEGIN rendered/ { print; n = split(pretty, lines, "\n"); for (i = 1; i <= n; i++) print "#   " lines[i]; skip = 1; next }
		/^# END rendered/ { skip = 0 }
		!skip { print }
	' "$example"
}
new_example=""
if command -v jq >/dev/null; then
	new_example=$(render_comment "$(printf '%s' "$json" | jq .)")
else
	echo "render-example.sh: jq not found; leaving the comment in example.nix alone" >&2
fi

if $check; then
	status=0
	if [ "$(cat "$out")" != "$json" ]; then
		echo "render-example.sh: $out is out of date; run nixos-module/render-example.sh" >&2
		diff <(jq . "$out" 2>/dev/null || cat "$out") <(printf '%s' "$json" | jq . 2>/dev/null || printf '%s\n' "$json") >&2 || true
		status=1
	fi
	if [ -n "$new_example" ] && [ "$(cat "$example")" != "$new_example" ]; then
		echo "render-example.sh: the rendered copy in $example is out of date; run nixos-module/render-example.sh" >&2
		status=1
	fi
	exit $status
fi

printf '%s' "$json" >"$out"
if [ -n "$new_example" ]; then
	printf '%s\n' "$new_example" >"$example"
fi
echo "wrote $out" >&2
