// Package lab embeds the example lab flake in this directory, so that
// panther-lab carries it and needs no checkout of the repository.
package lab

import "embed"

// Flake holds flake.nix, hosts.json, lab.json, panther.json, the builder,
// switch-to-configuration.sh and units/ at its root. It is read-only.
//
//go:embed flake.nix hosts.json lab.json panther.json builder.sh switch-to-configuration.sh units
var Flake embed.FS
