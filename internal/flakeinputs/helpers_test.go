package flakeinputs_test

import (
	"os"
	"os/exec"
	"strings"
)

func nixStoreDelete(p string) ([]byte, error) {
	cmd := exec.Command("nix-store", "--delete", p)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NIX_CONFIG=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "NIX_CONFIG=build-users-group =")
	return cmd.CombinedOutput()
}
