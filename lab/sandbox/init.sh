# Init step of a sandbox boot. It runs as PID 1 of fresh mount, PID,
# UTS, IPC and cgroup (and optionally network) namespaces, prepares a root
# on an overlay of the host's / and replaces itself with systemd.
#
# Arguments: merged-dir upper-dir work-dir systemd-binary netns(0|1)
# File descriptor 3 carries one line from the harness once the host side is
# ready: "go" or "net <addr/prefix> <gateway>".
set -eu
merged=$1 upper=$2 work=$3 systemd=$4 netns=$5

# Nothing mounted here may leak back into the host's mount namespace.
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=/,upperdir=$upper,workdir=$work" "$merged"
cd "$merged"

mount -t proc -o nosuid,nodev,noexec proc proc
# Kernel-global knobs stay read-only so units like systemd-sysctl cannot
# change the host; a private network namespace keeps its own net.* knobs.
mount --bind proc/sys proc/sys
if [ "$netns" = 1 ]; then mount --bind proc/sys/net proc/sys/net; fi
mount -o remount,bind,ro proc/sys
if [ -e proc/sysrq-trigger ]; then
	mount --bind proc/sysrq-trigger proc/sysrq-trigger
	mount -o remount,bind,ro proc/sysrq-trigger
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 sys/fs/cgroup

# A private /dev with the usual nodes; /dev/console is /dev/null so no
# getty or console output reaches the host's console.
mount -t tmpfs -o mode=755,nosuid,size=4m tmpfs dev
mknod -m 666 dev/null c 1 3
mknod -m 666 dev/zero c 1 5
mknod -m 666 dev/full c 1 7
mknod -m 666 dev/random c 1 8
mknod -m 666 dev/urandom c 1 9
mknod -m 666 dev/tty c 5 0
mkdir -m 755 dev/net
mknod -m 666 dev/net/tun c 10 200
touch dev/console
mount --bind dev/null dev/console
mkdir -m 755 dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts dev/pts
ln -s pts/ptmx dev/ptmx
mkdir -m 1777 dev/shm
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs dev/shm
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr

# A fresh /run on every boot, like a real machine.
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs run

read -r cmd addr gateway <&3
exec 3<&-
if [ "$cmd" = net ]; then
	ip link set lo up
	ip addr add "$addr" dev eth0
	ip link set eth0 up
	ip route add default via "$gateway"
fi

pivot_root . .
umount -l .

# Stage 2, as the boot loader and NixOS's stage 2 do it: the boot loader
# entry (the boot default that switch-to-configuration switch and boot
# write) names the system to bring up with init=<toplevel>/init; its
# activation installs that system (units, /run/current-system) before
# systemd starts, and /run/booted-system records it.
entry=/boot/loader/entries/panther.conf
if [ -r "$entry" ]; then
	init=$(sed -n 's/^options.*init=\([^ ]*\).*/\1/p' "$entry")
	top=${init%/init}
	if [ -n "$init" ] && [ -x "$top/activate" ]; then
		echo "stage 2: activating $top"
		"$top/activate" "$top" || echo "stage 2: the activation of $top failed"
		ln -sfn "$top" /run/booted-system
	else
		echo "stage 2: $entry names no system with an activation script (init=$init)"
	fi
fi
# Capabilities that reach the host kernel (modules, clock) are dropped.
exec setpriv --bounding-set=-sys_module,-sys_time,-wake_alarm -- "$systemd"
