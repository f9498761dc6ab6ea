package nix

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestParseGenerations(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		name    string
		in      string
		want    []Generation
		wantErr error
	}{
		{name: "empty", in: ""},
		{
			name: "two",
			in:   "   1   2026-11-25 22:13:44   \n   2   2026-11-25 22:14:02   (current)\n",
			want: []Generation{
				{Number: 1, Created: time.Date(2026, 11, 25, 22, 13, 44, 0, utc)},
				{Number: 2, Created: time.Date(2026, 11, 25, 22, 14, 2, 0, utc), Current: true},
			},
		},
		{
			name: "current not last, blank lines",
			in:   "\n  41   2025-01-02 03:04:05   (current)\n\n  42   2025-01-02 03:04:06\n",
			want: []Generation{
				{Number: 41, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, utc), Current: true},
				{Number: 42, Created: time.Date(2025, 1, 2, 3, 4, 6, 0, utc)},
			},
		},
		{name: "bad number", in: "  x   2026-11-25 22:13:44\n", wantErr: ErrParse},
		{name: "negative number", in: "  -1   2026-11-25 22:13:44\n", wantErr: ErrParse},
		{name: "bad date", in: "  1   2026-13-25 22:13:44\n", wantErr: ErrParse},
		{name: "missing time", in: "  1   2026-11-25\n", wantErr: ErrParse},
		{name: "unknown marker", in: "  1   2026-11-25 22:13:44 (old)\n", wantErr: ErrParse},
		{name: "error text", in: "error: profile does not exist\n", wantErr: ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGenerations(tt.in, utc)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseDiffClosures(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []ClosureChange
		wantErr error
	}{
		{name: "empty", in: "\n"},
		{
			name: "nix 2.8 colored output",
			in:   "foo: 1.0 \u2192 1.1, \x1b[31;1m+19.5 KiB\x1b[0m\n",
			want: []ClosureChange{{Name: "foo", Old: []string{"1.0"}, New: []string{"1.1"}, SizeDelta: 19968}},
		},
		{
			name: "added removed and size only",
			in: "acl: ∅ → 2.3.1, +301.2 KiB\n" +
				"zlib: 1.2.13 → ∅, \x1b[32;1m-125.0 KiB\x1b[0m\n" +
				"glibc: -16.0 KiB\n" +
				"nixos-system-alpha: 26.05.lab-good → 26.05.lab-good-v2\n",
			want: []ClosureChange{
				{Name: "acl", New: []string{"2.3.1"}, SizeDelta: 308429},
				{Name: "zlib", Old: []string{"1.2.13"}, SizeDelta: -128000},
				{Name: "glibc", SizeDelta: -16384},
				{Name: "nixos-system-alpha", Old: []string{"26.05.lab-good"}, New: []string{"26.05.lab-good-v2"}},
			},
		},
		{
			name: "several versions and epsilon, indented",
			in:   "  python3: 3.11.7, 3.12.1 → 3.12.2, ε, +8.0 KiB\n",
			want: []ClosureChange{{Name: "python3", Old: []string{"3.11.7", "3.12.1"}, New: []string{"3.12.2", ""}, SizeDelta: 8192}},
		},
		{name: "no colon", in: "garbage\n", wantErr: ErrParse},
		{name: "no arrow", in: "foo: 1.0, 1.1\n", wantErr: ErrParse},
		{name: "nothing after the name", in: "foo: \n", wantErr: ErrParse},
		{name: "empty both sides", in: "foo: ∅ → ∅\n", wantErr: ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDiffClosures(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
			for _, c := range got {
				back, err := ParseDiffClosures(c.String())
				if err != nil || len(back) != 1 || fmt.Sprintf("%#v", back[0]) != fmt.Sprintf("%#v", c) {
					t.Errorf("round trip of %q: %#v, %v", c.String(), back, err)
				}
			}
		})
	}
}

func TestParseBuildJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{name: "nix 2.8", in: `[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-x"}}]`, want: "/nix/store/b-x"},
		{name: "empty list", in: `[]`, wantErr: ErrNoOutput},
		{name: "no out", in: `[{"outputs":{"lib":"/nix/store/c"}}]`, wantErr: ErrNoOutput},
		{name: "not json", in: `building...`, wantErr: ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBuildJSON([]byte(tt.in))
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("= %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStripANSI(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "plain", want: "plain"},
		{name: "colors", in: "\x1b[31;1merror:\x1b[0m boom", want: "error: boom"},
		{name: "cursor", in: "\x1b[2K\x1b[1Gline", want: "line"},
		{name: "osc link", in: "\x1b]8;;http://x\x07text\x1b]8;;\x07", want: "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StripANSI(tt.in); got != tt.want {
				t.Errorf("StripANSI(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
