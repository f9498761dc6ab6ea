#!/bin/sh
# Activation script of a panther lab system (<toplevel>/activate), run by
# switch-to-configuration and at boot by the sandbox's stage 2, as NixOS runs
# its activation script: it installs the system's units (and their
# multi-user.target wants links) in /etc/systemd/system, removes the units of
# the previously activated system that this one lacks, and points
# /run/current-system at the system. It never starts or stops a unit.
#
# During a switch (LAB_SWITCH=1) it pauses lab/switch-delay seconds with the
# units installed and before /run/current-system moves, and it fails (exit
# 1, after doing its work) if /etc/panther-lab/fail-activation exists or the
# system has lab/fail-activation.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -u

top=@out@
unit_dir=/etc/systemd/system
wants=$unit_dir/multi-user.target.wants
manifest=/etc/panther-lab/units

echo "activating the lab system $top"
mkdir -p "$wants" "${manifest%/*}"
if [ -e "$manifest" ]; then
	while read -r u; do
		[ -e "$top/etc/systemd/system/$u" ] || rm -f "$unit_dir/$u" "$wants/$u"
	done <"$manifest"
fi
: >"$manifest.tmp"
for f in "$top"/etc/systemd/system/*.service; do
	[ -e "$f" ] || continue
	u=${f##*/}
	cp "$f" "$unit_dir/.$u.tmp" && mv "$unit_dir/.$u.tmp" "$unit_dir/$u"
	if grep -qs '^WantedBy=.*multi-user.target' "$f"; then
		ln -sfn "../$u" "$wants/$u"
	else
		rm -f "$wants/$u"
	fi
	echo "$u" >>"$manifest.tmp"
done
mv "$manifest.tmp" "$manifest"

res=0
if [ -n "${LAB_SWITCH:-}" ]; then
	delay=$(cat "$top/lab/switch-delay" 2>/dev/null || echo 0)
	if [ "${delay:-0}" != 0 ]; then
		echo "lab: slow switch: pausing the activation for ${delay}s" >&2
		sleep "$delay"
	fi
	if [ -e /etc/panther-lab/fail-activation ] || [ -e "$top/lab/fail-activation" ]; then
		echo "activation script failed (lab system $(cat "$top/lab/variant"))" >&2
		res=1
	fi
fi
ln -sfn "$top" /run/current-system.tmp && mv -T /run/current-system.tmp /run/current-system
exit $res
