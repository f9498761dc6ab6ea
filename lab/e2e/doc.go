// Package e2e holds the end-to-end tests: the real pantherctl binary against
// real panther-agents in systemd sandboxes on an in-process tailnet, building
// a real nix flake. All tailnet integration tests that need the whole system
// live in this one package (each test binary linking the tailnet test
// control costs minutes to build cold).
package e2e
