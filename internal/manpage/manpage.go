// Package manpage writes man pages in roff (the man macro package) from
// plain text and flag definitions, so that pantherctl's and panther-agent's
// pages are generated from the same definitions as their --help.
package manpage

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Page builds one man page. The zero value is not usable; call [New].
type Page struct {
	b strings.Builder
}

// New starts page name(section), e.g. New("pantherctl", "1", "panther 1.2").
func New(name, section, source, manual string) *Page {
	p := &Page{}
	fmt.Fprintf(&p.b, ".TH %s %s \"\" %s %s\n", quote(strings.ToUpper(name)), section, quote(source), quote(manual))
	return p
}

// Section starts a section (.SH), e.g. "NAME", "SYNOPSIS", "OPTIONS".
func (p *Page) Section(title string) *Page {
	fmt.Fprintf(&p.b, ".SH %s\n", quote(strings.ToUpper(title)))
	return p
}

// Sub starts a subsection (.SS).
func (p *Page) Sub(title string) *Page {
	fmt.Fprintf(&p.b, ".SS %s\n", quote(title))
	return p
}

// Para writes text as one or more paragraphs: a blank line separates them;
// lines of one paragraph are joined (roff fills them).
func (p *Page) Para(text string) *Page {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		p.b.WriteString(".PP\n")
		for _, line := range strings.Split(para, "\n") {
			p.b.WriteString(Escape(strings.TrimSpace(line)) + "\n")
		}
	}
	return p
}

// Literal writes lines as they are, unfilled (.nf ... .fi), indented.
func (p *Page) Literal(lines ...string) *Page {
	p.b.WriteString(".PP\n.RS 4\n.nf\n")
	for _, l := range lines {
		p.b.WriteString(Escape(l) + "\n")
	}
	p.b.WriteString(".fi\n.RE\n")
	return p
}

// Item writes a tagged paragraph: term in bold, then its description.
func (p *Page) Item(term, desc string) *Page {
	fmt.Fprintf(&p.b, ".TP\n\\fB%s\\fR\n%s\n", Escape(term), Escape(strings.TrimSpace(desc)))
	return p
}

// Flags writes one item per flag of fs for which keep is true (nil: all),
// sorted by name, with "--name VALUE" and the default unless it is empty,
// false or zero; defaults maps a flag's name to the default text to show
// instead of its machine-dependent DefValue.
func (p *Page) Flags(fs *flag.FlagSet, keep func(*flag.Flag) bool, defaults map[string]string) *Page {
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if keep == nil || keep(f) {
			fl = append(fl, f)
		}
	})
	sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	for _, f := range fl {
		term := "--" + f.Name
		name, desc := flag.UnquoteUsage(f)
		if !IsBool(f) {
			if name == "" {
				name = "value"
			}
			term += " " + strings.ToUpper(name)
		}
		def := f.DefValue
		if d, ok := defaults[f.Name]; ok {
			def = d
		}
		if def != "" && def != "false" && def != "0" && def != "0s" && !strings.Contains(desc, "(default") {
			desc += " (default " + def + ")"
		}
		p.Item(term, desc)
	}
	return p
}

// IsBool reports whether f is a boolean flag (takes no value).
func IsBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// WriteTo writes the page.
func (p *Page) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, p.b.String())
	return int64(n), err
}

// String returns the page.
func (p *Page) String() string { return p.b.String() }

// Escape makes text safe inside a roff line: backslashes are doubled, a
// hyphen is a real minus (so options can be copied), and a line starting
// with '.' or '\” is not taken as a request.
func Escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(Escape(s), `"`, `\(dq`) + `"`
}
