#!/bin/sh
# switch-to-configuration of a panther lab system: a POSIX sh stand-in for
# NixOS's that does real systemd work. It is meant to run as root inside a
# systemd sandbox (never on a real machine: it rewrites /etc/systemd/system).
#
#   dry-activate  print (stderr) what switch would stop, restart and start
#   switch        activate now and write the boot entry
#   test          activate now, leave the boot entry alone
#   boot          only write the boot entry
#
# Exit codes as NixOS: 0 ok, 1 usage or dry-activate failure, 2 activation
# script failed, 4 a unit failed to start, 100 reboot required (variant
# reboot-required, after an otherwise good switch); 3 when the variant
# cut-network would cut the test runner's own network.
#
# /run/current-system names the active generation; the units of a
# generation are its etc/systemd/system/*.service. If the file
# /etc/panther-lab/fail-activation exists, switch/test of every variant
# reports a failed activation (exit 2). Variant slow-dry sleeps in
# dry-activate, slow-switch in the middle of the activation (the new units
# installed, /run/current-system not yet moved), for the seconds in
# lab/dry-delay and lab/switch-delay.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -u

top=@out@
action=${1:-}
variant=$(cat "$top/lab/variant")
new_dir=$top/etc/systemd/system
old_dir=/run/current-system/etc/systemd/system
unit_dir=/etc/systemd/system
boot_entry=/boot/loader/entries/panther.conf

say() { echo "$*" >&2; }

# units_in DIR: the service units of a generation, sorted.
units_in() {
	[ -d "$1" ] || return 0
	for f in "$1"/*.service; do
		[ -e "$f" ] && basename "$f"
	done
}

# commas A B C: "A, B, C"
commas() {
	out=
	for x in "$@"; do out=${out:+$out, }$x; done
	echo "$out"
}

# plan: fill to_stop, to_restart and to_start by comparing the running
# generation's units with ours. Unchanged units that are not active are
# started too.
plan() {
	to_stop= to_restart= to_start=
	for u in $(units_in "$old_dir"); do
		if [ ! -e "$new_dir/$u" ]; then
			to_stop="$to_stop $u"
		elif ! cmp -s "$old_dir/$u" "$new_dir/$u"; then
			to_restart="$to_restart $u"
		fi
	done
	for u in $(units_in "$new_dir"); do
		if [ ! -e "$old_dir/$u" ]; then
			to_start="$to_start $u"
		elif cmp -s "$old_dir/$u" "$new_dir/$u" && ! systemctl is-active --quiet "$u" 2>/dev/null; then
			to_start="$to_start $u"
		fi
	done
}

write_boot_entry() {
	mkdir -p "${boot_entry%/*}" || return 1
	{
		echo "title Panther Lab ($variant)"
		echo "version $(cat "$top/nixos-version")"
		echo "options init=$top/init"
		echo "toplevel $top"
	} >"$boot_entry.tmp" && mv "$boot_entry.tmp" "$boot_entry"
}

# set_links up|down: every link but lo, unless this is the network
# namespace of the test runner that built us (recorded in lab/runner-netns;
# unknown counts as the runner's). The kernel drops a link's routes when it
# goes down, so down saves them and up puts them back.
saved_routes=/run/panther-lab/routes
set_links() {
	here=$(readlink /proc/self/ns/net)
	runner=$(cat "$top/lab/runner-netns")
	if [ -z "$runner" ] || [ "$here" = "$runner" ]; then
		say "not setting links $1: this may be the test runner's network namespace ($here)"
		return 1
	fi
	if [ "$1" = down ] && [ ! -e "$saved_routes" ]; then
		mkdir -p "${saved_routes%/*}"
		{
			ip -4 route show | grep -v 'proto kernel' | sed 's/^/-4 /'
			ip -6 route show | grep -v 'proto kernel' | sed 's/^/-6 /'
		} >"$saved_routes"
	fi
	for dev in $(ip -o link show | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
		[ "$dev" = lo ] && continue
		say "setting link $dev $1"
		ip link set dev "$dev" "$1" || say "warning: cannot set link $dev $1"
	done
	if [ "$1" = up ] && [ -e "$saved_routes" ]; then
		while read -r route; do
			[ -n "$route" ] || continue
			# "-4 default via A dev eth0" -> ip -4 route replace default via A dev eth0
			ip ${route%% *} route replace ${route#* } || say "warning: cannot restore route: $route"
		done <"$saved_routes"
		rm -f "$saved_routes"
	fi
}

activate() {
	res=0
	plan
	if [ -n "$to_stop" ]; then
		say "stopping the following units: $(commas $to_stop)"
		systemctl stop $to_stop || say "warning: stopping units failed"
	fi

	say "activating the configuration..."
	mkdir -p "$unit_dir"
	for u in $to_stop; do rm -f "$unit_dir/$u"; done
	for u in $(units_in "$new_dir"); do
		cp "$new_dir/$u" "$unit_dir/.$u.tmp" && mv "$unit_dir/.$u.tmp" "$unit_dir/$u"
	done
	delay=$(cat "$top/lab/switch-delay" 2>/dev/null || echo 0)
	if [ "${delay:-0}" != 0 ]; then
		say "lab: slow switch: pausing the activation for ${delay}s"
		sleep "$delay"
	fi
	if [ -e /etc/panther-lab/fail-activation ] || [ "$variant" = activation-fail ]; then
		say "activation script failed (lab variant $variant)"
		res=2
	fi
	if [ "$variant" = cut-network ]; then
		set_links down || res=3
	else
		set_links up || :
	fi
	ln -sfn "$top" /run/current-system

	say "reloading the systemd manager..."
	systemctl daemon-reload || { say "warning: daemon-reload failed"; res=4; }

	failed=
	if [ -n "$to_restart" ]; then
		say "restarting the following units: $(commas $to_restart)"
		for u in $to_restart; do systemctl restart "$u" || failed="$failed $u"; done
	fi
	if [ -n "$to_start" ]; then
		say "starting the following units: $(commas $to_start)"
		for u in $to_start; do systemctl start "$u" || failed="$failed $u"; done
	fi
	if [ "$variant" = restart-agent ]; then
		say "restarting panther-agent.service"
		systemctl restart --no-block panther-agent.service || say "warning: cannot restart panther-agent.service"
	fi
	if [ -n "$failed" ]; then
		say "warning: the following units failed: $(commas $failed)"
		res=4
	fi
	if [ "$variant" = reboot-required ] && [ "$res" = 0 ]; then
		say "a reboot is required to finish the switch"
		res=100
	fi
	echo "switched to $top ($action), exit $res"
	return $res
}

case "$action" in
dry-activate)
	if [ "$variant" = dry-fail ]; then
		say "error: dry activation failed: lab variant dry-fail refuses to activate"
		exit 1
	fi
	delay=$(cat "$top/lab/dry-delay" 2>/dev/null || echo 0)
	if [ "${delay:-0}" != 0 ]; then
		say "lab: slow dry-activate: sleeping ${delay}s"
		sleep "$delay"
	fi
	plan
	[ -z "$to_stop" ] || say "would stop the following units: $(commas $to_stop)"
	say "would activate the configuration..."
	[ -z "$to_restart" ] || say "would restart the following units: $(commas $to_restart)"
	[ -z "$to_start" ] || say "would start the following units: $(commas $to_start)"
	exit 0
	;;
boot)
	write_boot_entry || exit 1
	echo "boot entry for $top written to $boot_entry"
	exit 0
	;;
switch | test)
	if [ "$action" = switch ]; then
		write_boot_entry || say "warning: cannot write the boot entry"
	fi
	activate
	exit $?
	;;
*)
	say "usage: switch-to-configuration switch|boot|test|dry-activate"
	exit 1
	;;
esac
