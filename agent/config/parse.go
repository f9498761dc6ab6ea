package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Parse strictly decodes a config document without applying defaults or
// validating. Before decoding, it walks the document against the shape of
// [Config], so that an unknown key (matched case-sensitively), a repeated
// key, a value of the wrong type or trailing data is reported with the
// key's path, e.g. "healthChecks[0].timeout: ...".
func Parse(data []byte) (*Config, error) {
	if err := checkShape(data); err != nil {
		return nil, err
	}
	// Defaults whose zero value is meaningful are set before decoding, so
	// that an explicit 0 in the file stays 0.
	c := Config{HealthSettle: Duration{DefaultHealthSettle}}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		// checkShape admits only documents that decode; keep a clear error
		// should the two ever disagree.
		return nil, problem("", fmt.Sprintf("decode: %v", err))
	}
	return &c, nil
}

type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindDuration
	kindList
	kindObject
)

// shape describes what a JSON value must look like.
type shape struct {
	kind   kind
	bits   int               // kindInt: size of the Go integer
	elem   *shape            // kindList
	fields map[string]*shape // kindObject, keyed by exact JSON name
}

func shapeOf(t reflect.Type) *shape {
	if t == reflect.TypeFor[Duration]() {
		return &shape{kind: kindDuration}
	}
	switch t.Kind() {
	case reflect.Pointer: // an optional value: absent means "the default"
		return shapeOf(t.Elem())
	case reflect.String:
		return &shape{kind: kindString}
	case reflect.Bool:
		return &shape{kind: kindBool}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return &shape{kind: kindInt, bits: t.Bits()}
	case reflect.Slice:
		return &shape{kind: kindList, elem: shapeOf(t.Elem())}
	case reflect.Struct:
		s := &shape{kind: kindObject, fields: map[string]*shape{}}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			s.fields[name] = shapeOf(f.Type)
		}
		return s
	}
	panic(fmt.Sprintf("config: no JSON shape for %v", t)) // programming error, caught by tests
}

func checkShape(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec, data: data}
	if err := w.value("", shapeOf(reflect.TypeFor[Config]())); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem("", fmt.Sprintf("unexpected data after the JSON object (%s)", w.where()))
	}
	return nil
}

type walker struct {
	dec  *json.Decoder
	data []byte
}

// where renders the decoder's position as "line L, column C".
func (w *walker) where() string {
	return position(w.data, w.dec.InputOffset())
}

func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

func (w *walker) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err == nil {
		return tok, nil
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return nil, problem("", fmt.Sprintf("not valid JSON at %s: %v", position(w.data, syn.Offset), syn))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, problem("", "not valid JSON: unexpected end of input")
	}
	return nil, problem("", fmt.Sprintf("not valid JSON at %s: %v", w.where(), err))
}

func (w *walker) value(path string, s *shape) error {
	tok, err := w.token()
	if err != nil {
		return err
	}
	field := path
	if field == "" {
		field = "(top level)"
	}
	wrong := func() error {
		return problem(field, fmt.Sprintf("want %s, got %s", describeShape(s), describeToken(tok)))
	}
	if tok == nil {
		if s.kind == kindObject { // null where an object belongs
			return wrong()
		}
		return nil // null leaves the default in place
	}
	switch s.kind {
	case kindString:
		if _, ok := tok.(string); !ok {
			return wrong()
		}
	case kindBool:
		if _, ok := tok.(bool); !ok {
			return wrong()
		}
	case kindInt:
		n, ok := tok.(json.Number)
		if !ok {
			return wrong()
		}
		if _, err := strconv.ParseInt(n.String(), 10, s.bits); err != nil {
			return problem(field, fmt.Sprintf("want a whole number that fits in %d bits, got %s", s.bits, n))
		}
	case kindDuration:
		var err error
		switch v := tok.(type) {
		case string:
			_, err = ParseDuration(v)
		case json.Number:
			_, err = ParseDuration(v.String())
		default:
			return wrong()
		}
		if err != nil {
			return problem(field, err.Error())
		}
	case kindList:
		if tok != json.Delim('[') {
			return wrong()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(fmt.Sprintf("%s[%d]", path, i), s.elem); err != nil {
				return err
			}
		}
		_, err := w.token() // ']'
		return err
	case kindObject:
		if tok != json.Delim('{') {
			return wrong()
		}
		seen := map[string]bool{}
		for w.dec.More() {
			kt, err := w.token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			child := key
			if path != "" {
				child = path + "." + key
			}
			fs, ok := s.fields[key]
			if !ok {
				return problem(child, unknownKeyMessage(key, s.fields))
			}
			if seen[key] {
				return problem(child, "key appears more than once")
			}
			seen[key] = true
			if err := w.value(child, fs); err != nil {
				return err
			}
		}
		_, err := w.token() // '}'
		return err
	}
	return nil
}

func describeShape(s *shape) string {
	switch s.kind {
	case kindString:
		return "a string"
	case kindInt:
		return "a whole number"
	case kindBool:
		return "true or false"
	case kindDuration:
		return `a duration (like "60s") or a number of seconds`
	case kindList:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeShape(s.elem), "a "), "an ") + "s"
	default:
		return "an object"
	}
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "a list"
	case string:
		return fmt.Sprintf("the string %q", abbrev(v))
	case json.Number:
		return "the number " + abbrev(v.String())
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%v", tok)
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// unknownKeyMessage names the unknown key and suggests the closest known one.
func unknownKeyMessage(key string, known map[string]*shape) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestDist := "", 3 // suggest only within two edits
	for _, n := range names {
		d := editDistance(strings.ToLower(key), strings.ToLower(n))
		if d < bestDist {
			best, bestDist = n, d
		}
	}
	msg := fmt.Sprintf("unknown key %q", abbrev(key))
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return len(ra) + len(rb) // too far apart to matter; keep fuzzing cheap
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
