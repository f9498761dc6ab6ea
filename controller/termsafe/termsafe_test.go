package termsafe

import (
	"bytes"
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "building /nix/store/abc-x.drv", "building /nix/store/abc-x.drv"},
		{"tab kept", "a\tb", "a\tb"},
		{"newline escaped", "a\nb", `a\nb`},
		{"carriage return", "ok\r\x1b[1Adone", `ok\r\x1b[1Adone`},
		{"osc 52 clipboard", "\x1b]52;c;cm0gLXJmIH4=\x07", `\x1b]52;c;cm0gLXJmIH4=\x07`},
		{"dcs", "\x1bP+q544e\x1b\\", `\x1bP+q544e\x1b\`},
		{"8-bit csi raw byte", "a\x9b2Jb", `a\x9b2Jb`},
		{"8-bit csi as utf-8", "a\u009b2Jb", `a\u009b2Jb`},
		{"osc title 8-bit", "\u009d0;pwned\u009c", `\u009d0;pwned\u009c`},
		{"colour dropped", "\x1b[31;1merror:\x1b[0m boom", "error: boom"},
		{"cursor csi escaped", "\x1b[2K\x1b[1G", `\x1b[2K\x1b[1G`},
		{"del and nul", "a\x7f\x00b", `a\x7f\x00b`},
		{"bidi override", "ok \u202egnp.exe", `ok \u202egnp.exe`},
		{"unicode kept", "│ 57ms → größer", "│ 57ms → größer"},
		{"lone esc at end", "a\x1b", `a\x1b`},
		{"unfinished sgr", "\x1b[31", `\x1b[31`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(tc.in); got != tc.want {
				t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTextKeepsNewlines(t *testing.T) {
	if got, want := Text("a\nb\r\n\x1b]0;x\x07"), "a\nb\\r\n\\x1b]0;x\\x07"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

// TestNoControlBytesSurvive: whatever goes in, no byte a terminal acts on
// comes out, except tab and newline.
func TestNoControlBytesSurvive(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c), 'x')
	}
	all = append(all, "\u0085\u009b\u009d\u202e"...)
	for _, out := range []string{Line(string(all)), Text(string(all))} {
		assertSafe(t, out)
	}
}

func assertSafe(t *testing.T, out string) {
	t.Helper()
	for i, r := range out {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfffd || isUnsafeRune(r) {
			t.Fatalf("unsafe rune %U at %d in %q", r, i, out)
		}
	}
}

func TestWriterJoinsSplitSequences(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	in := "line one\n\x1b[3" + "1mred\x1b[0m\xc2" + "\x9b2J\nlast"
	for _, part := range []string{"line one\n\x1b[3", "1mred\x1b[0m\xc2", "\x9b2J\nlast"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), Text(in); got != want {
		t.Errorf("Writer wrote %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), `\u009b2J`) {
		t.Errorf("split 8-bit CSI not escaped: %q", out.String())
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("\x1b]52;c;aGk=\x07")
	f.Add("a\x9bb\r\x1b[1A")
	f.Fuzz(func(t *testing.T, s string) {
		assertSafe(t, Line(s))
		out := Text(s)
		assertSafe(t, out)
		if strings.Count(out, "\n") != strings.Count(s, "\n") {
			t.Fatalf("Text changed the number of lines: %q -> %q", s, out)
		}
		if strings.Contains(Line(s), "\n") {
			t.Fatalf("Line kept a newline: %q", s)
		}
	})
}
