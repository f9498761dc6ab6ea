package tailnet_test

import (
	"errors"
	"testing"

	"github.com/pantheros/panther/internal/tailnet"
	"github.com/pantheros/panther/lab/tailnettest"
)

// TestControlConnected: a node that is up is in its map poll with control;
// a closed node, or one never started, is not.
func TestControlConnected(t *testing.T) {
	tn := tailnettest.New(t, tailnettest.Options{})
	n := tn.Node(t, "reach")
	if err := n.ControlConnected(); err != nil {
		t.Fatalf("up node: %v", err)
	}
	if err := n.Logout(t.Context()); err != nil {
		t.Errorf("logout: %v", err)
	}
	n.Close()
	if err := n.ControlConnected(); !errors.Is(err, tailnet.ErrControlDown) {
		t.Errorf("closed node: %v, want ErrControlDown", err)
	}
	idle, err := tailnet.New(tn.Config(t, "idle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.ControlConnected(); !errors.Is(err, tailnet.ErrControlDown) {
		t.Errorf("node never started: %v, want ErrControlDown", err)
	}
}
