package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestScriptsMatchTestFlake: the lab's builder, switch-to-configuration and
// activation script are lab/nixtest's test flake's, so the lab and `make
// demo` run on the hosts the tests prove. Edit the test flake's and copy
// them here.
func TestScriptsMatchTestFlake(t *testing.T) {
	for _, name := range []string{"builder.sh", "switch-to-configuration.sh", "activate.sh"} {
		canonical, err := os.ReadFile(filepath.Join("..", "..", "lab", "nixtest", "testdata", "flake", name))
		if err != nil {
			t.Fatal(err)
		}
		ours, err := Flake.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, canonical) {
			t.Errorf("examples/lab/%s differs from lab/nixtest/testdata/flake/%s: copy it over", name, name)
		}
	}
}
