# Builder of a panther lab toplevel, run by /bin/sh with the derivation's
# attributes in its environment (host, variant, version, units, ...).
export PATH=/usr/bin:/bin
set -eu

echo "building the lab system of $host (variant $variant)"
mkdir -p "$out/bin" "$out/etc/systemd/system" "$out/lab"
printf '%s\n' "$version" >"$out/nixos-version"
printf '%s\n' "$host" >"$out/etc/hostname"
printf '%s\n' "$variant" >"$out/lab/variant"
printf '%s\n' "$cutNetwork" >"$out/lab/cut-network"
printf '%s\n' "$labNetns" >"$out/lab/lab-netns"
for f in $units; do
	name=$(basename "$f")
	name=${name#*-} # strip the store hash
	cp "$f" "$out/etc/systemd/system/$name"
	echo "installed unit $name"
done
sed -e "s|@out@|$out|g" "$switchScript" >"$out/bin/switch-to-configuration"
chmod 0755 "$out/bin/switch-to-configuration"
echo "done: $out"
