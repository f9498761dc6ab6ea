package config

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// FuzzLoad feeds arbitrary documents through the Load pipeline (strict
// parse, defaults, validation). It must never panic; a document that parses
// must be valid JSON; and a valid config must survive a marshal/parse round
// trip unchanged.
func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile(moduleExample); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{}`,
		`{"hostName": "web1", "trustedKeys": ["` + testKey + `"]}`,
		`{"hostName": "web1", "trustedKeys": ["` + testKey + `"], "confirmTimeout": 1.5, "maxConfirmTimeout": "2h", "tags": []}`,
		`{"healthChecks": [{"name": "a", "type": "tcp", "address": "x:1", "timeout": "1s"}]}`,
		`{"port": 1e3}`,
		`{"port": 1, "port": 2}`,
		`{"HostName": "x"}`,
		`[null]`,
		`{"hostName": "web1"} trailing`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Parse accepted invalid JSON %q", data)
		}
		c.ApplyDefaults()
		if c.Validate() != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal a valid config: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of a marshalled valid config %s: %v", out, err)
		}
		again.ApplyDefaults()
		if err := again.Validate(); err != nil {
			t.Fatalf("round trip made the config invalid: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", again, c)
		}
	})
}
