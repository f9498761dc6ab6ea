#!/bin/sh
# switch-to-configuration of a panther lab system: a POSIX sh stand-in for
# NixOS's switch-to-configuration-ng that keeps its contract and does real
# systemd work. It is meant to run as root inside a systemd sandbox (never on
# a real machine: its activation rewrites /etc/systemd/system).
#
#   switch        install the boot default, then activate now
#   boot          only install the boot default
#   test          activate now, leave the boot default alone
#   dry-activate  print (stderr) what switch would stop, restart and start
#   check         run the pre-switch checks (switch inhibitors) and exit
#
# As switch-to-configuration-ng:
# - root only; every mode takes /run/nixos/switch-to-configuration.lock with
#   a non-blocking flock and exits 11 ("Could not acquire lock") when another
#   switch holds it;
# - check, switch and test refuse (exit 1) when the system's
#   switch-inhibitors differ from /run/current-system's, unless
#   NIXOS_NO_CHECK is set: such a change needs boot and a reboot;
# - switch and boot write the boot loader entry (the boot default: the
#   system a reboot brings up); NIXOS_INSTALL_BOOTLOADER=1 also "installs
#   the boot loader" (recorded in /boot/loader/installed);
# - when init-interface-version differs from /run/current-system's, switch
#   (after the boot entry), test and dry-activate exit 100 without
#   activating: a reboot is required;
# - units: a running unit whose file is gone is stopped unless it has
#   X-StopOnRemoval=false; a changed unit is skipped if it has
#   X-RestartIfChanged=false, reloaded with X-ReloadIfChanged=true,
#   restarted with X-StopIfChanged=false, else stopped and started; new
#   units wanted by multi-user.target are started;
# - activation: <toplevel>/activate installs the units and moves
#   /run/current-system; its failure gives exit 2; then failed units are
#   reset, systemd reloads, units restart and start;
# - after switch or test, any failed unit (also one that was failing before,
#   e.g. crash-looping in auto-restart) gives "warning: the following units
#   failed: a, b" and exit 4.
#
# Lab behaviours, one file each under <toplevel>/lab/ (see builder.sh):
# dry-fail (dry-activate exits 1), cut-network (switch takes every link but
# lo down, exit 3 if that would cut the test runner's own network),
# cut-control (switch cuts TCP to the tailnet's coordination server only;
# see control_cut),
# restart-agent (switch restarts panther-agent.service, no-block),
# reboot-switch (switch reboots the host with systemctl reboot, no-block),
# hang-switch (switch starts lab-hang.service, a oneshot that never ends,
# and so blocks for ever holding the lock), dry-delay and switch-delay
# (seconds: slow dry-activate, slow activation). If /etc/panther-lab/fail-activation
# exists on the host, the activation of every system fails (exit 2).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -u

top=@out@
action=${1:-}
lab=$top/lab
cur=/run/current-system
new_dir=$top/etc/systemd/system
old_dir=$cur/etc/systemd/system
boot_entry=/boot/loader/entries/panther.conf
lock=/run/nixos/switch-to-configuration.lock

say() { echo "$*" >&2; }
has() { [ -e "$lab/$1" ]; }

case "$action" in
switch | boot | test | dry-activate | check) ;;
*)
	say "Usage: switch-to-configuration [switch|boot|test|dry-activate|check]"
	exit 1
	;;
esac
if [ "$(id -u)" != 0 ]; then
	say "switch-to-configuration must be run as root"
	exit 1
fi
mkdir -p /run/nixos
exec 9>>"$lock"
if ! flock -n 9; then
	say "Could not acquire lock"
	exit 11
fi

# unit_flag FILE KEY DEFAULT: the boolean KEY of a unit file (true|false).
unit_flag() {
	v=$(sed -n "s/^$2=//p" "$1" 2>/dev/null | tail -n 1)
	case "$v" in
	true | yes | 1 | on) echo true ;;
	false | no | 0 | off) echo false ;;
	*) echo "$3" ;;
	esac
}

# units_in DIR: the service units of a generation, sorted.
units_in() {
	[ -d "$1" ] || return 0
	for f in "$1"/*.service; do
		[ -e "$f" ] && basename "$f"
	done
}

# wanted FILE: whether a unit file is wanted by multi-user.target.
wanted() { grep -qs '^WantedBy=.*multi-user.target' "$1"; }

# commas A B C: "A, B, C"
commas() {
	out=
	for x in "$@"; do out=${out:+$out, }$x; done
	echo "$out"
}

# plan: compare the running units of the current system with ours.
plan() {
	to_stop= to_skip= to_restart= to_reload= to_start=
	for u in $(units_in "$old_dir"); do
		# Loaded and not inactive: running, or failed.
		[ "$(systemctl is-active "$u" 2>/dev/null)" != inactive ] || continue
		if [ ! -e "$new_dir/$u" ]; then
			[ "$(unit_flag "$old_dir/$u" X-StopOnRemoval true)" = false ] || to_stop="$to_stop $u"
		elif ! cmp -s "$old_dir/$u" "$new_dir/$u"; then
			if [ "$(unit_flag "$new_dir/$u" X-RestartIfChanged true)" = false ]; then
				to_skip="$to_skip $u"
			elif [ "$(unit_flag "$new_dir/$u" X-ReloadIfChanged false)" = true ]; then
				to_reload="$to_reload $u"
			elif [ "$(unit_flag "$new_dir/$u" X-StopIfChanged true)" = false ]; then
				to_restart="$to_restart $u"
			else
				to_stop="$to_stop $u"
				to_start="$to_start $u"
			fi
		fi
	done
	for u in $(units_in "$new_dir"); do
		wanted "$new_dir/$u" || continue
		case " $to_start $to_restart $to_reload $to_skip " in *" $u "*) continue ;; esac
		systemctl is-active --quiet "$u" 2>/dev/null || to_start="$to_start $u"
	done
}

inhibitors_changed() {
	[ -e "$cur/switch-inhibitors" ] && ! cmp -s "$cur/switch-inhibitors" "$top/switch-inhibitors"
}

write_boot_entry() {
	mkdir -p "${boot_entry%/*}" || return 1
	if [ "${NIXOS_INSTALL_BOOTLOADER:-}" = 1 ]; then
		say "installing the boot loader..."
		date -u +%s >/boot/loader/installed || return 1
	fi
	{
		echo "title Panther Lab ($(cat "$lab/variant"))"
		echo "version $(cat "$top/nixos-version")"
		echo "linux $top/kernel"
		echo "initrd $top/initrd"
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
	runner=$(cat "$lab/runner-netns")
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

# failed_units: units failed, or in auto-restart after a failure.
failed_units() {
	systemctl list-units --all --plain --no-legend --no-pager --state=failed | awk '{ print $1 }'
	for u in $(systemctl list-units --all --plain --no-legend --no-pager --type=service --state=auto-restart | awk '{ print $1 }'); do
		[ "$(systemctl show --property=ExecMainStatus --value "$u")" = 0 ] || echo "$u"
	done
}

# control_cut on|off: cut (or restore) this host's TCP to the tailnet's
# coordination server, host:port of the agent's controlUrl in
# /etc/panther/agent.json, and nothing else: DERP, STUN and direct
# WireGuard paths (UDP) keep working, as on a host whose route to control
# is gone while a peer on its own link still reaches it. on adds a policy
# rule (pref 4242) that blackholes TCP to that address and port and kills
# the connections already open (ss -K), so the agent's map poll ends and
# cannot come back; off deletes the rule. Only outside the test runner's
# network namespace.
control_pref=4242
control_cut() {
	here=$(readlink /proc/self/ns/net)
	runner=$(cat "$lab/runner-netns")
	if [ -z "$runner" ] || [ "$here" = "$runner" ]; then
		[ "$1" = off ] && return 0
		say "not cutting control: this may be the test runner's network namespace ($here)"
		return 1
	fi
	if [ "$1" = off ]; then
		while ip rule del pref $control_pref 2>/dev/null; do :; done
		return 0
	fi
	hp=$(sed -n 's|.*"controlUrl": *"[a-z]*://\([^"/]*\).*|\1|p' /etc/panther/agent.json 2>/dev/null | head -n 1)
	addr=${hp%:*} port=${hp##*:}
	if [ -z "$hp" ] || [ "$addr" = "$hp" ]; then
		say "cut-control: no controlUrl with host:port in /etc/panther/agent.json"
		return 1
	fi
	say "cutting TCP to the coordination server $addr:$port"
	ip rule add pref $control_pref to "$addr" ipproto tcp dport "$port" blackhole || return 1
	ss -K dst "$addr" dport = ":$port" >/dev/null || say "warning: cannot kill the connections to $addr:$port"
}

activate() {
	res=0
	plan
	if [ -n "$to_stop" ]; then
		say "stopping the following units: $(commas $to_stop)"
		systemctl stop $to_stop || say "warning: stopping units failed"
	fi
	[ -z "$to_skip" ] || say "NOT restarting the following changed units: $(commas $to_skip)"

	say "activating the configuration..."
	if ! LAB_SWITCH=1 "$top/activate" "$top"; then
		say "Failed to run activate script"
		res=2
	fi
	if has cut-network; then
		set_links down || res=3
	else
		set_links up || :
	fi
	if has cut-control; then
		control_cut on || res=3
	else
		control_cut off
	fi

	systemctl reset-failed || :
	say "reloading the systemd manager..."
	systemctl daemon-reload || { say "warning: daemon-reload failed"; res=3; }

	if [ -n "$to_reload" ]; then
		say "reloading the following units: $(commas $to_reload)"
		systemctl reload $to_reload || res=4
	fi
	if [ -n "$to_restart" ]; then
		say "restarting the following units: $(commas $to_restart)"
		for u in $to_restart; do systemctl restart "$u" || res=4; done
	fi
	if [ -n "$to_start" ]; then
		say "starting the following units: $(commas $to_start)"
		for u in $to_start; do systemctl start "$u" || res=4; done
	fi
	if has restart-agent; then
		say "restarting panther-agent.service"
		systemctl restart --no-block panther-agent.service || say "warning: cannot restart panther-agent.service"
	fi
	if has reboot-switch; then
		# As an activation that reboots the host (a kernel it must boot,
		# a watchdog): the shutdown stops this unit too.
		say "lab: the activation reboots the host"
		systemctl reboot --no-block || say "warning: cannot reboot"
		sleep 120
	fi
	if has hang-switch; then
		say "starting lab-hang.service (it never finishes)"
		systemctl start lab-hang.service || res=4
	fi
	failed=$(failed_units | sort -u)
	if [ -n "$failed" ]; then
		say "warning: the following units failed: $(commas $failed)"
		res=4
	fi
	echo "switched to $top ($action), exit $res"
	return $res
}

# Pre-switch checks: the switch inhibitors.
case "$action" in
check | switch | test)
	if [ -z "${NIXOS_NO_CHECK:-}" ] && inhibitors_changed; then
		say "There are changes to critical components of the system:"
		diff "$cur/switch-inhibitors" "$top/switch-inhibitors" | sed -n 's/^[<>] /  /p' >&2
		say "Switching into this system is not recommended: use 'boot' and reboot instead."
		say "Pre-switch checks failed"
		exit 1
	fi
	;;
esac
[ "$action" != check ] || exit 0

if [ "$action" = switch ] || [ "$action" = boot ]; then
	if ! write_boot_entry; then
		say "Failed to install bootloader"
		exit 1
	fi
	if [ "$action" = boot ]; then
		echo "boot entry for $top written to $boot_entry"
		exit 0
	fi
fi

if [ -e "$cur/init-interface-version" ] && ! cmp -s "$cur/init-interface-version" "$top/init-interface-version"; then
	say "Warning: the new NixOS configuration has an ‘init’ that is incompatible with the current configuration. The new configuration won't take effect until you reboot the system."
	exit 100
fi

case "$action" in
dry-activate)
	if has dry-fail; then
		say "error: dry activation failed: lab variant $(cat "$lab/variant") refuses to activate"
		exit 1
	fi
	delay=$(cat "$lab/dry-delay" 2>/dev/null || echo 0)
	if [ "${delay:-0}" != 0 ]; then
		say "lab: slow dry-activate: sleeping ${delay}s"
		sleep "$delay"
	fi
	plan
	[ -z "$to_stop" ] || say "would stop the following units: $(commas $to_stop)"
	[ -z "$to_skip" ] || say "would NOT stop the following changed units: $(commas $to_skip)"
	say "would activate the configuration..."
	[ -z "$to_restart" ] || say "would restart the following units: $(commas $to_restart)"
	[ -z "$to_reload" ] || say "would reload the following units: $(commas $to_reload)"
	[ -z "$to_start" ] || say "would start the following units: $(commas $to_start)"
	exit 0
	;;
switch | test)
	activate
	exit $?
	;;
esac
