package nix

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseClosureSizes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]int64
	}{
		{
			name: "nix 2.8 list",
			in:   `[{"path":"/nix/store/a-x","narSize":1,"closureSize":30744},{"path":"/nix/store/b-y","closureSize":5}]`,
			want: map[string]int64{"/nix/store/a-x": 30744, "/nix/store/b-y": 5},
		},
		{
			name: "invalid path has no size",
			in:   `[{"path":"/nix/store/a-x","valid":false}]`,
			want: map[string]int64{},
		},
		{
			name: "newer nix object",
			in:   `{"/nix/store/a-x":{"closureSize":7},"/nix/store/b-y":null}`,
			want: map[string]int64{"/nix/store/a-x": 7},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClosureSizes([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := ParseClosureSizes([]byte("nope")); !errors.Is(err, ErrParse) {
		t.Fatalf("garbage: err = %v, want ErrParse", err)
	}
}
