package buildplan

import (
	"errors"
	"reflect"
	"testing"
)

func TestNew(t *testing.T) {
	hosts := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name    string
		hosts   []string
		buildOn string
		want    Plan
		err     error
	}{
		{"fleet", hosts, Fleet, Plan{RolloutID: "r", Peers: hosts}, nil},
		{"one host", []string{"a"}, Fleet, Plan{}, nil},
		{"none", hosts, None, Plan{}, nil},
		{"on a host", hosts, "c", Plan{RolloutID: "r", Peers: []string{"c"}, First: "c"}, nil},
		{"on a stranger", hosts, "x", Plan{}, ErrBuildOn},
		{"local", hosts, Local, Plan{RolloutID: "r", Local: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := New("r", tc.hosts, tc.buildOn)
			if !errors.Is(err, tc.err) || (err == nil && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("New = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
