package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os/exec"
	"syscall"
	"time"
)

// outputTail bounds how much of a failed command's output a result keeps.
const outputTail = 512

// runCheck runs one service check with its timeout and retries.
func runCheck(ctx context.Context, cs CheckSpec) Result {
	res := Result{Name: cs.Name, Kind: cs.Type}
	attempts := 1 + cs.Retries
	var last error
	for i := 1; i <= attempts; i++ {
		actx, cancel := context.WithTimeout(ctx, cs.Timeout)
		detail, err := probe(actx, cs)
		cancel()
		if err == nil {
			res.OK, res.Detail = true, detail
			if i > 1 {
				res.Detail += fmt.Sprintf(" (attempt %d of %d)", i, attempts)
			}
			return res
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %v", cs.Timeout)
		}
		last = err
		if i < attempts && sleep(ctx, cs.Interval) != nil {
			break
		}
	}
	if ctx.Err() != nil {
		res.Detail = fmt.Sprintf("%v (interrupted: %v)", last, ctx.Err())
	} else {
		res.Detail = fmt.Sprintf("%v (%d attempts)", last, attempts)
	}
	return res
}

// probe makes one attempt and returns a short description of success.
func probe(ctx context.Context, cs CheckSpec) (string, error) {
	switch cs.Type {
	case TypeHTTP:
		return probeHTTP(ctx, cs.URL, cs.ExpectStatus)
	case TypeTCP:
		return probeTCP(ctx, cs.Address)
	case TypeCommand:
		return probeCommand(ctx, cs.Command)
	}
	return "", fmt.Errorf("unknown check type %q", cs.Type)
}

// probeHTTP GETs url on a fresh connection, without proxies or redirects,
// and wants status want.
func probeHTTP(ctx context.Context, url string, want int) (string, error) {
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) { // its text would repeat method and URL
			err = ue.Err
		}
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		return "", fmt.Errorf("GET %s: status %s, want %d", url, resp.Status, want)
	}
	return fmt.Sprintf("GET %s: %s", url, resp.Status), nil
}

// probeTCP connects to address.
func probeTCP(ctx context.Context, address string) (string, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", address)
	if err != nil {
		return "", err
	}
	remote := conn.RemoteAddr().String()
	conn.Close()
	return "connected to " + remote, nil
}

// probeCommand runs argv and wants exit status 0. On timeout its whole
// process group is killed.
func probeCommand(ctx context.Context, argv []string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		if tail := out.String(); tail != "" {
			return "", fmt.Errorf("%s: %w: %s", argv[0], err, tail)
		}
		return "", fmt.Errorf("%s: %w", argv[0], err)
	}
	return argv[0] + " exited 0", nil
}

// tailBuffer keeps the last outputTail bytes written to it.
type tailBuffer struct {
	b []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > outputTail {
		t.b = append(t.b[:0], t.b[len(t.b)-outputTail:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.TrimSpace(t.b)) }
