package cli

import (
	"io"
	"strings"
	"unicode/utf8"

	"github.com/pantheros/panther/controller/termsafe"
)

// table prints aligned columns whose widths follow their content: a cell
// longer than its column's max is cut with "…", so that one long value
// never shifts the other rows (scripts parse rows by whitespace-separated
// fields, one row per line; the full values are in --json and the logs).
type table struct {
	cols []column
	rows [][]string
}

type column struct {
	title string
	max   int // widest the column gets; 0: no limit (last column only)
}

func newTable(cols ...column) *table { return &table{cols: cols} }

// add appends a row; every cell passes through termsafe (cells hold text
// from agents).
func (t *table) add(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = termsafe.Line(c)
	}
	t.rows = append(t.rows, row)
}

func (t *table) write(w io.Writer) {
	widths := make([]int, len(t.cols))
	for i, c := range t.cols {
		widths[i] = runeLen(c.title)
		for _, r := range t.rows {
			if i < len(r)-1 || (i < len(r) && len(r) == len(t.cols)) { // not a free last cell
				widths[i] = max(widths[i], runeLen(r[i]))
			}
		}
		if c.max > 0 && widths[i] > c.max {
			widths[i] = max(c.max, runeLen(c.title))
		}
	}
	titles := make([]string, len(t.cols))
	for i, c := range t.cols {
		titles[i] = c.title
	}
	writeRow(w, widths, titles)
	for _, r := range t.rows {
		// A row with fewer cells than columns ends with a cell that runs
		// on freely (e.g. an error message instead of the other columns).
		n := min(len(r), len(t.cols))
		line := make([]string, n)
		for i := range line {
			line[i] = r[i]
			if i < n-1 {
				line[i] = cut(line[i], widths[i])
			}
		}
		writeRow(w, widths, line)
	}
}

func writeRow(w io.Writer, widths []int, cells []string) {
	var b strings.Builder
	for i, v := range cells {
		if i == len(cells)-1 {
			b.WriteString(v)
			break
		}
		b.WriteString(v)
		b.WriteString(strings.Repeat(" ", widths[i]-runeLen(v)+1))
	}
	io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n")
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

// cut shortens s to n runes, the last one "…".
func cut(s string, n int) string {
	if runeLen(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	return string([]rune(s)[:n-1]) + "…"
}
