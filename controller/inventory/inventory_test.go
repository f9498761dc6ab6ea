package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, s string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadAndSelect(t *testing.T) {
	dir := write(t, `{"hosts": {
		"hetzner-vps": {"tailnetName": "vps", "tags": ["servers"], "confirmTimeout": "120s", "criticalUnits": ["nginx.service"]},
		"web2": {"tags": ["servers", "web"]},
		"yoga": {"tags": ["laptops"]}
	}}`)
	inv, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	vps := inv.Host("hetzner-vps")
	if vps.Addr() != "vps" || vps.ConfirmTimeout.Duration != 120*time.Second || vps.CriticalUnits[0] != "nginx.service" {
		t.Errorf("hetzner-vps = %+v", vps)
	}
	if inv.Host("zephyrus").Addr() != "zephyrus" {
		t.Error("unlisted host should use its own name")
	}
	flake := []string{"hetzner-vps", "web2", "yoga", "zephyrus"}
	names := func(hs []Host) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.Name)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name    string
		sel     []string
		all     bool
		want    string
		wantErr string
	}{
		{"by name", []string{"yoga", "zephyrus"}, false, "yoga,zephyrus", ""},
		{"by tag", []string{"@servers"}, false, "hetzner-vps,web2", ""},
		{"tag and name dedup", []string{"@web", "web2", "yoga"}, false, "web2,yoga", ""},
		{"all", nil, true, "hetzner-vps,web2,yoga,zephyrus", ""},
		{"unknown host", []string{"nope"}, false, "", "hosts: hetzner-vps, web2, yoga, zephyrus"},
		{"unknown tag", []string{"@db"}, false, "", "tags: @laptops, @servers, @web"},
		{"nothing", nil, false, "", "no hosts selected"},
		{"all and names", []string{"yoga"}, true, "", "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inv.Select(flake, tc.sel, tc.all)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tc.want {
				t.Errorf("got %s, want %s", names(got), tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if inv, err := Load(t.TempDir()); err != nil || len(inv.Hosts) != 0 {
		t.Errorf("missing file: %v %v", inv, err)
	}
	if _, err := Load(write(t, `{"hosts": {"a": {"tag": ["x"]}}}`)); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := Load(write(t, `{"hosts": {"a": {"confirmTimeout": "soon"}}}`)); err == nil {
		t.Error("bad duration accepted")
	}
}

// Host names follow the one rule of internal/hostname, in panther.json and
// on the command line, before anything is dialed or uploaded.
func TestHostNamesAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name, json string
	}{
		{"host key with a leading dash", `{"hosts": {"-web": {}}}`},
		{"host key with a dot", `{"hosts": {"web.example": {}}}`},
		{"tailnetName with a space", `{"hosts": {"web": {"tailnetName": "we b"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(write(t, tc.json)); err == nil {
				t.Errorf("Load accepted %s", tc.json)
			}
		})
	}
	inv, err := Load(write(t, `{"hosts": {"1web": {"tailnetName": "web-1.tail.example"}}}`))
	if err != nil {
		t.Fatalf("a leading digit and a dotted tailnetName are fine: %v", err)
	}
	if _, err := inv.Select(nil, []string{"-rf"}, false); err == nil {
		t.Error("Select accepted the host name -rf")
	}
	if hs, err := inv.Select(nil, []string{"1web"}, false); err != nil || hs[0].Addr() != "web-1.tail.example" {
		t.Errorf("Select(1web) = %v, %v", hs, err)
	}
}
