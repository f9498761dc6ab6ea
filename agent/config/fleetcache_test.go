package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestValidateFleetCache(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "fleet.key")
	// `nix key generate-secret --key-name fleet-1`
	if err := os.WriteFile(key, []byte("fleet-1:3jNuCEB4qbn/OK7FALyhaKRqR6rO9ji4cI3zPbsOZZG89u3haZJdt56q3v0iGwuCuKx5mhqKINKEiPShXJKnew==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("fleet-1:AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pub = "fleet-1:vPbt4WmSXbeeqt79IhsLgriseZoaiiDShIj0oVySp3s="
	for _, tt := range []struct {
		name       string
		mutate     func(c *Config)
		wantFields []string
		wantMsg    string
	}{
		{"off", func(c *Config) {}, nil, ""},
		{"serves and fetches", func(c *Config) {
			c.Tags = []string{"tag:panther-agent"}
			c.FleetCache.SecretKeyFile, c.FleetCache.TrustedKeys = key, []string{pub}
		}, nil, ""},
		{"serving needs tags", func(c *Config) { c.Tags = nil; c.FleetCache.SecretKeyFile = key }, []string{"fleetCache.secretKeyFile"}, "tags"},
		{"missing key file", func(c *Config) {
			c.Tags = []string{"tag:panther-agent"}
			c.FleetCache.SecretKeyFile = filepath.Join(dir, "none")
		}, []string{"fleetCache.secretKeyFile"}, "no such file"},
		{"short key", func(c *Config) {
			c.Tags = []string{"tag:panther-agent"}
			c.FleetCache.SecretKeyFile = bad
		}, []string{"fleetCache.secretKeyFile"}, "secret key has 3 bytes"},
		{"bad public key", func(c *Config) { c.FleetCache.TrustedKeys = []string{"panther-ed25519:xyz"} }, []string{"fleetCache.trustedKeys"}, "invalid nix signing key"},
		{"port taken by the API", func(c *Config) { c.FleetCache.Port = c.Port }, []string{"fleetCache.port"}, "already taken"},
		{"port out of range", func(c *Config) { c.FleetCache.Port = 70000 }, []string{"fleetCache.port"}, "between 1 and 65535"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			checkValidate(t, c, tt.wantFields, tt.wantMsg)
		})
	}
}
