package manpage

import (
	"flag"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"--dry-run", `\-\-dry\-run`},
		{`a\b`, `a\eb`},
		{".TH evil", `\&.TH evil`},
		{"'quoted", `\&'quoted`},
	}
	for _, tc := range tests {
		if got := Escape(tc.in); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Bool("yes", false, "do it")
	fs.String("flake", ".", "flake `DIR`")
	fs.String("key", "/home/me/.config/panther/key", "the key")
	fs.Int("jobs", 0, "hosts at once")
	page := New("x", "1", "src", "manual").Section("options").Flags(fs, nil, map[string]string{"key": "$XDG_CONFIG_HOME/panther/key"}).String()
	for _, want := range []string{
		".TP\n\\fB\\-\\-yes\\fR\ndo it\n",
		"\\fB\\-\\-flake DIR\\fR\nflake DIR (default .)\n",
		"\\fB\\-\\-jobs INT\\fR\nhosts at once\n",
		"(default $XDG_CONFIG_HOME/panther/key)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "/home/me") {
		t.Errorf("the machine's default leaked:\n%s", page)
	}
	if strings.Index(page, "flake") > strings.Index(page, "yes") {
		t.Errorf("flags not sorted:\n%s", page)
	}
}
