// Package inventory reads the optional per-host settings at the root of a
// flake (panther.json) and selects hosts by name, by @tag or all of them.
// The hosts themselves come from the flake's nixosConfigurations; the
// inventory only adds tags and settings.
package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pantheros/panther/internal/hostname"
)

// FileName is the inventory file at the flake root.
const FileName = "panther.json"

// Host is one host's settings.
type Host struct {
	// Name is the nixosConfigurations attribute.
	Name string `json:"-"`
	// TailnetName is the agent's tailnet host name; default Name.
	TailnetName string `json:"tailnetName,omitempty"`
	// Tags select the host with @tag; default none.
	Tags []string `json:"tags,omitempty"`
	// ConfirmTimeout overrides the agent's default window; default 0 (the agent's).
	ConfirmTimeout Duration `json:"confirmTimeout,omitzero"`
	// CriticalUnits must be active after a switch, on top of the agent's list.
	CriticalUnits []string `json:"criticalUnits,omitempty"`
}

// Addr is the tailnet name to dial.
func (h Host) Addr() string {
	if h.TailnetName != "" {
		return h.TailnetName
	}
	return h.Name
}

// Duration is a JSON duration string like "90s".
type Duration struct{ time.Duration }

// UnmarshalJSON accepts "90s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"90s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "90s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Inventory is the parsed file.
type Inventory struct {
	Hosts map[string]Host `json:"hosts"`
}

// Load reads <flakeDir>/panther.json; a missing file is an empty inventory.
func Load(flakeDir string) (*Inventory, error) {
	inv := &Inventory{Hosts: map[string]Host{}}
	b, err := os.ReadFile(filepath.Join(flakeDir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return inv, nil
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(inv); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	for name, h := range inv.Hosts {
		if err := hostname.CheckAttr(name); err != nil {
			return nil, fmt.Errorf("%s: hosts: %w", FileName, err)
		}
		if h.TailnetName != "" {
			if err := hostname.CheckTailnet(h.TailnetName); err != nil {
				return nil, fmt.Errorf("%s: hosts.%s.tailnetName: %w", FileName, name, err)
			}
		}
		h.Name = name
		inv.Hosts[name] = h
	}
	return inv, nil
}

// Host returns the settings of name (defaults when it is not listed).
func (inv *Inventory) Host(name string) Host {
	if h, ok := inv.Hosts[name]; ok {
		return h
	}
	return Host{Name: name}
}

// Select resolves selectors — host names, "@tag" — or all hosts, against
// the flake's host list (nil when unknown: names are then taken as given and
// @tag and all use the inventory's hosts). The result is sorted and unique.
func (inv *Inventory) Select(flakeHosts []string, selectors []string, all bool) ([]Host, error) {
	universe := flakeHosts
	if universe == nil {
		for name := range inv.Hosts {
			universe = append(universe, name)
		}
	}
	seen := map[string]bool{}
	var out []Host
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			out = append(out, inv.Host(name))
		}
	}
	if all {
		if len(selectors) > 0 {
			return nil, errors.New("give host names/@tags or --all, not both")
		}
		for _, n := range universe {
			add(n)
		}
	}
	for _, sel := range selectors {
		if tag, ok := strings.CutPrefix(sel, "@"); ok {
			n := 0
			for _, name := range universe {
				if slices.Contains(inv.Host(name).Tags, tag) {
					add(name)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("no host has the tag %q (tags: %s)", tag, strings.Join(inv.tags(), ", "))
			}
			continue
		}
		if err := hostname.CheckAttr(sel); err != nil {
			return nil, err
		}
		if flakeHosts != nil && !slices.Contains(flakeHosts, sel) {
			return nil, fmt.Errorf("%q is not in the flake's nixosConfigurations (hosts: %s)", sel, strings.Join(flakeHosts, ", "))
		}
		add(sel)
	}
	if len(out) == 0 {
		return nil, errors.New("no hosts selected: name hosts, @tags or --all")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (inv *Inventory) tags() []string {
	set := map[string]bool{}
	for _, h := range inv.Hosts {
		for _, t := range h.Tags {
			set[t] = true
		}
	}
	var out []string
	for t := range set {
		out = append(out, "@"+t)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none; add them in " + FileName}
	}
	return out
}
