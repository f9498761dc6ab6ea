package agent

import (
	"context"
	"errors"
	"testing"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// fakeShutdownConn answers like systemd's manager.
type fakeShutdownConn struct {
	state  string
	jobs   []sdbus.JobStatus
	err    error
	closed bool
}

func (c *fakeShutdownConn) SystemStateContext(ctx context.Context) (*sdbus.Property, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &sdbus.Property{Name: "SystemState", Value: godbus.MakeVariant(c.state)}, nil
}

func (c *fakeShutdownConn) ListJobsContext(ctx context.Context) ([]sdbus.JobStatus, error) {
	return c.jobs, c.err
}

func (c *fakeShutdownConn) Close() { c.closed = true }

func TestShuttingDown(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name    string
		conns   []*fakeShutdownConn // one per dialer; nil: the dial fails
		want    bool
		wantErr bool
	}{
		{name: "running", conns: []*fakeShutdownConn{{state: "running"}}},
		{name: "stopping", conns: []*fakeShutdownConn{{state: "stopping"}}, want: true},
		{name: "reboot queued", want: true, conns: []*fakeShutdownConn{{state: "degraded", jobs: []sdbus.JobStatus{
			{Unit: "nginx.service", JobType: "stop"}, {Unit: "reboot.target", JobType: "start", Status: "waiting"}}}}},
		{name: "poweroff queued", want: true, conns: []*fakeShutdownConn{{state: "running", jobs: []sdbus.JobStatus{{Unit: "poweroff.target", JobType: "start"}}}}},
		{name: "other jobs only", conns: []*fakeShutdownConn{{state: "running", jobs: []sdbus.JobStatus{
			{Unit: "multi-user.target", JobType: "start"}, {Unit: "reboot.target", JobType: "stop"}}}}},
		{name: "private socket down, system bus answers", conns: []*fakeShutdownConn{nil, {state: "stopping"}}, want: true},
		{name: "first answer fails, second answers", conns: []*fakeShutdownConn{{err: down}, {state: "running"}}},
		{name: "nobody answers", conns: []*fakeShutdownConn{nil, {err: down}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p shutdownProbe
			for _, c := range tc.conns {
				p.dial = append(p.dial, func(ctx context.Context) (shutdownConn, error) {
					if c == nil {
						return nil, down
					}
					return c, nil
				})
			}
			got, err := p.ShuttingDown(t.Context())
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ShuttingDown = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
			for _, c := range tc.conns {
				if c != nil && !c.closed {
					t.Error("a connection was left open")
				}
			}
		})
	}
}
