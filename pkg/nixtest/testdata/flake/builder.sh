# Builder of a panther lab toplevel, run by /bin/sh with the derivation's
# attributes in its environment (host, variant, version, units, ...).
export PATH=/usr/bin:/bin
set -eu

echo "building the lab system of $host (variant $variant)"
if [ -n "$failBuild" ]; then
	echo "compiling lab-broken (1/2)"
	echo "lab-broken.c:3:1: error: expected ';' before '}' token" >&2
	echo "make: *** [lab-broken] Error 1" >&2
	exit 1
fi

if [ -n "${buildDelay:-}" ]; then
	echo "lab: slow build: sleeping ${buildDelay}s"
	sleep "$buildDelay"
fi

mkdir -p "$out/bin" "$out/etc/systemd/system" "$out/lab" "$out/share/lab-web"
printf '%s\n' "$version" >"$out/nixos-version"
printf '%s\n' "$host" >"$out/etc/hostname"
printf '%s\n' "$variant" >"$out/lab/variant"
printf '%s\n' "$runnerNetns" >"$out/lab/runner-netns"
# Slow steps of switch-to-configuration (variants slow-dry, slow-switch).
printf '%s\n' "${dryDelay:-0}" >"$out/lab/dry-delay"
printf '%s\n' "${switchDelay:-0}" >"$out/lab/switch-delay"
for f in $units; do
	name=$(basename "$f")
	name=${name#*-} # strip the store hash
	sed -e "s|@out@|$out|g" "$f" >"$out/etc/systemd/system/$name"
	echo "installed unit $name"
done
cp "$webServer" "$out/share/lab-web/server.py"
sed -e "s|@out@|$out|g" "$switchScript" >"$out/bin/switch-to-configuration"
chmod 0755 "$out/bin/switch-to-configuration"
echo "done: $out"
