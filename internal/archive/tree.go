package archive

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// kind is the type of one archive entry.
type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// node is one entry of an in-memory view of an archive's tree.
type node struct {
	kind   kind
	target string // symlink target, as written
}

// tree is the set of entries of one archive, keyed by clean slash-separated
// relative name ("a/b"). Pack and Extract both check symlinks against it, so
// what Pack accepts is exactly what Extract accepts.
type tree map[string]node

// maxLinkHops bounds symlink chains (and breaks loops) while resolving.
const maxLinkHops = 40

// maxResolveSteps bounds the components one symlink check walks, over all
// its hops, so a crafted chain of long targets costs little; a link that
// needs more is refused as if it escaped.
const maxResolveSteps = 4096

// cleanName turns an archive entry name into a clean relative name. It
// refuses absolute names, ".." components and NUL bytes; "" means the root
// itself ("." or "./").
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%q: NUL byte in name: %w", name, ErrUnsafePath)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%q: absolute name: %w", name, ErrUnsafePath)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%q: parent reference: %w", name, ErrUnsafePath)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// missingParents returns the proper prefixes of name that are not entries
// yet, shortest first, and refuses with ErrUnsafePath when the longest one
// that is an entry is not a directory. Every entry's parents are
// directories (addParents and Extract keep it so), so the walk stops at the
// first prefix found: its cost is linear in the parents it returns.
func (t tree) missingParents(name string) ([]string, error) {
	var missing []string
	for i := len(name) - 1; i > 0; i-- {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		if n, ok := t[p]; ok {
			if n.kind != kindDir {
				return nil, fmt.Errorf("%q: parent %q is not a directory: %w", name, p, ErrUnsafePath)
			}
			break
		}
		missing = append(missing, p)
	}
	slices.Reverse(missing)
	return missing, nil
}

// addParents records every missing proper prefix of name as a directory and
// returns the ones it added, shortest first.
func (t tree) addParents(name string) []string {
	var added []string
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		if _, ok := t[p]; !ok {
			t[p] = node{kind: kindDir}
			added = append(added, p)
		}
	}
	return added
}

// checkLink reports ErrSymlinkEscape if the symlink at name, followed
// component by component through the entries of t, would leave the root.
// Components that do not exist are taken literally, as the kernel would fail
// on them rather than escape.
func (t tree) checkLink(name string) error {
	n := t[name]
	if n.target == "" || strings.HasPrefix(n.target, "/") {
		return fmt.Errorf("%q -> %q: %w", name, n.target, ErrSymlinkEscape)
	}
	var b budget
	if _, ok := t.resolve(parentParts(name), n.target, &b); !ok {
		return fmt.Errorf("%q -> %q: %w", name, n.target, ErrSymlinkEscape)
	}
	return nil
}

// checkAllLinks runs checkLink on every symlink in name order, so the error
// names the same entry on every run.
func (t tree) checkAllLinks() error {
	var links []string
	for name, n := range t {
		if n.kind == kindSymlink {
			links = append(links, name)
		}
	}
	sort.Strings(links)
	for _, name := range links {
		if err := t.checkLink(name); err != nil {
			return err
		}
	}
	return nil
}

// resolve walks rel starting at the directory given by stack (components
// from the root) and returns the resulting components; ok is false when the
// walk leaves the root, meets an absolute target or loops.
func (t tree) resolve(stack []string, rel string, b *budget) ([]string, bool) {
	stack = append([]string(nil), stack...)
	for _, c := range strings.Split(rel, "/") {
		b.steps++
		if b.steps > maxResolveSteps {
			return nil, false
		}
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return nil, false
			}
			stack = stack[:len(stack)-1]
			continue
		}
		p := strings.Join(append(stack, c), "/")
		n, ok := t[p]
		if !ok || n.kind != kindSymlink {
			stack = append(stack, c)
			continue
		}
		b.hops++
		if b.hops > maxLinkHops || n.target == "" || strings.HasPrefix(n.target, "/") {
			return nil, false
		}
		var okLink bool
		stack, okLink = t.resolve(stack, n.target, b)
		if !okLink {
			return nil, false
		}
	}
	return stack, true
}

// budget counts the work of one symlink check.
type budget struct{ hops, steps int }

func parentParts(name string) []string {
	d := path.Dir(name)
	if d == "." {
		return nil
	}
	return strings.Split(d, "/")
}
