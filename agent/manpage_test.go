package agent

import (
	"bytes"
	"context"
	"flag"
	"os/exec"
	"strings"
	"testing"
)

func TestManPageCoversEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"man"}, &out, &errb); code != 0 {
		t.Fatalf("panther-agent man: exit %d: %s", code, errb.String())
	}
	page := out.String()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	runFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(page, `\fB\-\-`+strings.ReplaceAll(f.Name, "-", `\-`)) {
			t.Errorf("--%s missing", f.Name)
		}
	})
	if n < 20 {
		t.Fatalf("only %d flags", n)
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		if b, err := cmd.CombinedOutput(); err != nil || len(b) > 0 {
			t.Errorf("groff warns: %v\n%s", err, b)
		}
	}
}
