#!/bin/sh
# switch-to-configuration of a panther lab system: a POSIX sh stand-in for
# NixOS's that does real systemd work. It is meant to run as root inside a
# panther lab host (a systemd sandbox), never on a real machine: it rewrites
# /etc/systemd/system.
#
#   dry-activate  print (stderr) what switch would stop, restart and start
#   switch        activate now and write the boot entry
#   test          activate now, leave the boot entry alone
#   boot          only write the boot entry
#
# Exit codes as NixOS: 0 ok, 1 usage, 4 a unit failed to start; 3 when the
# variant cut-network would cut the network of the lab itself.
#
# /run/current-system names the active generation; the units of a
# generation are its etc/systemd/system/*.service.
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
		echo "toplevel $top"
	} >"$boot_entry.tmp" && mv "$boot_entry.tmp" "$boot_entry"
}

# set_links up|down: every link but lo, unless this is the network
# namespace the lab itself runs in (recorded in lab/lab-netns; unknown
# counts as the lab's). The kernel drops a link's routes when it goes down,
# so down saves them and up puts them back.
saved_routes=/run/panther-lab/routes
set_links() {
	here=$(readlink /proc/self/ns/net)
	labns=$(cat "$top/lab/lab-netns")
	if [ -z "$labns" ] || [ "$here" = "$labns" ]; then
		say "not setting links $1: this may be the lab's own network namespace ($here)"
		return 1
	fi
	if [ "$1" = down ] && [ ! -e "$saved_routes" ]; then
		mkdir -p "${saved_routes%/*}"
		ip -4 route show | grep -v 'proto kernel' >"$saved_routes"
	fi
	for dev in $(ip -o link show | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
		[ "$dev" = lo ] && continue
		say "setting link $dev $1"
		ip link set dev "$dev" "$1" || say "warning: cannot set link $dev $1"
	done
	if [ "$1" = up ] && [ -e "$saved_routes" ]; then
		while read -r route; do
			[ -n "$route" ] || continue
			ip -4 route replace $route || say "warning: cannot restore route: $route"
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
	if [ -n "$(cat "$top/lab/cut-network")" ]; then
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
	if [ -n "$failed" ]; then
		say "warning: the following units failed: $(commas $failed)"
		res=4
	fi
	echo "switched to $top ($action), exit $res"
	return $res
}

case "$action" in
dry-activate)
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
