# Builder of a panther lab toplevel, run by /bin/sh with the derivation's
# attributes in its environment. Required: host, variant, version, units,
# switchScript, activateScript. Optional: runnerNetns, features (names of
# lab behaviours, each a file under lab/; see switch-to-configuration.sh),
# initInterfaceVersion (default "systemd"), kernelVersion (default
# "6.6.0-lab"), inhibitors (the switch inhibitors' text), specialisation and
# specialisationUnits (a specialisation/<name> toplevel with these units
# added), agentUnit and agentMode (the text of panther-agent.service, which
# the system installs as is with mode keep, not at all with none, and with
# mode stops changed and without its X- lines, so that a switch would stop
# it, and with a mode args:<arguments> with these arguments added to its
# ExecStart), failBuild, buildDelay, dryDelay, switchDelay, webServer, salt,
# packages (store paths the system refers to in sw/lab-packages).
export PATH=/usr/bin:/bin
set -eu

echo "building the lab system of $host (variant $variant)"
if [ -n "${failBuild:-}" ]; then
	echo "compiling lab-broken (1/2)"
	echo "lab-broken.c:3:1: error: expected ';' before '}' token" >&2
	echo "make: *** [lab-broken] Error 1" >&2
	exit 1
fi

if [ -n "${buildDelay:-}" ]; then
	echo "lab: slow build: sleeping ${buildDelay}s"
	sleep "$buildDelay"
fi

kernelVersion=${kernelVersion:-6.6.0-lab}

# toplevel DIR NAME UNITS: a NixOS-shaped system toplevel in DIR whose
# configuration-name is NAME ("" for the base system).
toplevel() {
	dir=$1
	mkdir -p "$dir/bin" "$dir/etc/systemd/system" "$dir/lab" "$dir/sw/bin" \
		"$dir/kernel-modules/lib/modules/$kernelVersion" "$dir/specialisation"
	printf '%s\n' "$version" >"$dir/nixos-version"
	printf '%s\n' "${initInterfaceVersion:-systemd}" >"$dir/init-interface-version"
	printf 'panther lab kernel %s\n' "$kernelVersion" >"$dir/kernel"
	printf 'panther lab initrd %s\n' "$kernelVersion" >"$dir/initrd"
	printf 'panther lab modules\n' >"$dir/kernel-modules/lib/modules/$kernelVersion/modules.dep"
	printf '%s' "$2" >"$dir/configuration-name"
	printf '%s\n' "${inhibitors:-}" >"$dir/switch-inhibitors"
	printf '%s\n' "$host" >"$dir/etc/hostname"
	printf '%s\n' "$variant" >"$dir/lab/variant"
	printf '%s\n' "${runnerNetns:-}" >"$dir/lab/runner-netns"
	printf '%s\n' "${dryDelay:-0}" >"$dir/lab/dry-delay"
	printf '%s\n' "${switchDelay:-0}" >"$dir/lab/switch-delay"
	if [ -n "${packages:-}" ]; then
		printf '%s\n' $packages >"$dir/sw/lab-packages"
	fi
	for f in ${features:-}; do
		: >"$dir/lab/$f"
	done
	if [ -n "${webServer:-}" ]; then
		mkdir -p "$dir/share/lab-web"
		cp "$webServer" "$dir/share/lab-web/server.py"
	fi
	for f in $3; do
		name=$(basename "$f")
		name=${name#*-} # strip the store hash
		sed -e "s|@out@|$dir|g" "$f" >"$dir/etc/systemd/system/$name"
		echo "installed unit $name"
	done
	if [ -n "${agentUnit:-}" ]; then
		case "${agentMode:-keep}" in
		keep) printf '%s\n' "$agentUnit" >"$dir/etc/systemd/system/panther-agent.service" ;;
		stops) printf '%s\n' "$agentUnit" | grep -v '^X-' |
			sed -e 's/^\[Service\]$/[Service]\nEnvironment=PANTHER_LAB_AGENT_CHANGED=1/' >"$dir/etc/systemd/system/panther-agent.service" ;;
		args:*) printf '%s\n' "$agentUnit" | sed -e "s|^ExecStart=.*|& ${agentMode#args:}|" >"$dir/etc/systemd/system/panther-agent.service" ;;
		esac
	fi
	sed -e "s|@out@|$dir|g" "$switchScript" >"$dir/bin/switch-to-configuration"
	sed -e "s|@out@|$dir|g" "$activateScript" >"$dir/activate"
	printf '#!/bin/sh\n# Stage 2 of a lab system: activate, then systemd.\n%s/activate "%s" && exec /lib/systemd/systemd "$@"\n' "$dir" "$dir" >"$dir/init"
	chmod 0755 "$dir/bin/switch-to-configuration" "$dir/activate" "$dir/init"
}

toplevel "$out" "" "$units"
if [ -n "${specialisation:-}" ]; then
	toplevel "$out/specialisation/$specialisation" "$specialisation" "$units ${specialisationUnits:-}"
fi
echo "done: $out"
