package server

import (
	"context"
	"testing"

	"github.com/pantheros/panther/agent/journal"
	agentv1 "github.com/pantheros/panther/proto/panther/agent/v1"
)

// TestKeyIDReachesTheRecord: the id of the key that signed a request never
// reached the deployment's journal record (the engine stores Request.KeyID,
// the server never set it), so status and logs could not say who signed.
func TestKeyIDReachesTheRecord(t *testing.T) {
	s := New(Config{Host: "alpha"})
	in := &agentv1.Intent{Action: agentv1.Action_ACTION_SWITCH, DeploymentId: "d1"}
	if got := s.request(context.Background(), in, "path:/src", "0123456789abcdef").KeyID; got != "0123456789abcdef" {
		t.Errorf("request KeyID = %q", got)
	}
	info := recordToProto(&journal.Record{ID: "d1", Action: "switch", State: journal.StateConfirmed, KeyID: "0123456789abcdef"})
	if info.KeyId != "0123456789abcdef" {
		t.Errorf("DeploymentInfo.KeyId = %q", info.KeyId)
	}
}
