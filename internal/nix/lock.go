package nix

import "slices"

// LockFlags are added to every nix command that reads a flake: nix never
// changes the lock (an input missing from flake.lock is an error, not a
// fetch of whatever its URL gives today) and never writes flake.lock into
// the flake's directory, which for the agent is the content-addressed,
// signed source tree.
var LockFlags = []string{"--no-update-lock-file", "--no-write-lock-file"}

// flakeCommands are the nix subcommands that may read a flake (they take
// installables or a flake reference) and accept the lock flags. A "flake"
// subcommand counts for its own subcommands below.
var flakeCommands = []string{"build", "eval", "path-info", "show-derivation", "derivation", "copy", "log", "why-depends"}

var flakeSubcommands = []string{"archive", "metadata", "info", "show", "check", "prefetch"}

// lockArgv returns argv with LockFlags appended when it is a nix command
// that reads a flake (see flakeCommands); any other argv unchanged. It is
// the one place the flags are added, so every flake-reading call of this
// package, present and future, runs with them.
func (n *Nix) lockArgv(argv []string) []string {
	if len(argv) < 2 || argv[0] != n.nix {
		return argv
	}
	sub := argv[1]
	if sub == "flake" {
		if len(argv) < 3 || !slices.Contains(flakeSubcommands, argv[2]) {
			return argv
		}
	} else if !slices.Contains(flakeCommands, sub) {
		return argv
	}
	if slices.Contains(argv, LockFlags[0]) {
		return argv
	}
	return append(slices.Clip(argv), LockFlags...)
}
