// Package lab embeds the example lab flake in this directory, so that
// panther-lab carries it and needs no checkout of the repository.
package lab

import "embed"

// Flake holds flake.nix, hosts.json, lab.json, panther.json, builder.sh,
// switch-to-configuration.sh, activate.sh and units/ at its root. It is
// read-only. The three scripts are copies of lab/nixtest's test flake
// (TestScriptsMatchTestFlake keeps them identical).
//
//go:embed flake.nix hosts.json lab.json panther.json builder.sh switch-to-configuration.sh activate.sh units
var Flake embed.FS
