// Package termsafe makes text that came from an agent (or anything else
// pantherctl does not control) safe to print on the operator's terminal.
//
// A compromised or confused agent, or a build that prints whatever it likes,
// must not be able to drive the terminal: set the clipboard (OSC 52), send
// device control strings (DCS), move the cursor to rewrite lines already
// shown (CSI, "\r"), change the title, or hide text. escape is the one
// function that decides what is printed as is; every renderer in pantherctl
// calls it through Line, Text or Writer.
package termsafe

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Line returns s with every control character escaped, the newline
// included: for one line of output, a table cell or a live line.
func Line(s string) string { return escape(s, false) }

// Text returns s with every control character escaped except the newline:
// for multi-line text such as an error message.
func Text(s string) string { return escape(s, true) }

// escape writes s with control characters shown as Go-style escapes ("\x1b",
// "\r", "\u009b"), so nothing in it reaches the terminal as a command. Tab
// stays, and the newline when keepNewline. SGR sequences (colours: ESC [
// digits and semicolons m) are dropped whole: they are the one harmless kind
// and builds print plenty of them. Invalid UTF-8 is escaped byte by byte
// ("\x9b"), as a terminal not in UTF-8 mode reads 0x9b as CSI.
func escape(s string, keepNewline bool) string {
	if isPlain(s, keepNewline) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		c := s[i]
		if c == 0x1b {
			if n := sgrLen(s[i:]); n > 0 {
				i += n
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, c)
		case r == '\t', r == '\n' && keepNewline:
			b.WriteRune(r)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case isUnsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// isPlain reports whether s is printable ASCII, tab and (when
// keepNewline) newline only: the common case, returned as is without a copy.
func isPlain(s string, keepNewline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t' && (c != '\n' || !keepNewline)) || c >= 0x7f {
			return false
		}
	}
	return true
}

// isUnsafeRune reports the non-ASCII runes a terminal acts on or that hide
// or reorder text: C1 controls (U+0080-U+009F, 8-bit CSI, OSC, DCS), the
// bidirectional overrides and isolates, and the line and paragraph
// separators.
func isUnsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// sgrLen returns the length of the SGR sequence ESC [ params m at the start
// of s (params: digits, ';' and ':'), or 0 if s does not start with one.
func sgrLen(s string) int {
	if len(s) < 3 || s[0] != 0x1b || s[1] != '[' {
		return 0
	}
	for i := 2; i < len(s) && i < 64; i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == ';', c == ':':
			continue
		case c == 'm':
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// maxLine bounds what Writer holds while waiting for a newline.
const maxLine = 64 << 10

// Writer escapes a stream of text (Text rules) line by line, so an escape
// sequence or a UTF-8 character split across two writes is seen whole.
// Close writes what is left after the last newline.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that writes the escaped text to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes every complete line of p (and of what came before) and
// holds the rest, up to 64 KiB.
func (x *Writer) Write(p []byte) (int, error) {
	x.buf = append(x.buf, p...)
	i := bytes.LastIndexByte(x.buf, '\n')
	if i < 0 && len(x.buf) < maxLine {
		return len(p), nil
	}
	cut := i + 1
	if i < 0 {
		cut = len(x.buf)
	}
	if _, err := io.WriteString(x.w, Text(string(x.buf[:cut]))); err != nil {
		return 0, err
	}
	x.buf = append(x.buf[:0], x.buf[cut:]...)
	return len(p), nil
}

// Close writes what is held; it does not close the underlying writer.
func (x *Writer) Close() error {
	if len(x.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(x.w, Text(string(x.buf)))
	x.buf = x.buf[:0]
	return err
}
