package health

import (
	"context"
	"fmt"
	"os"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Systemd is the part of go-systemd's *dbus.Conn that health uses.
type Systemd interface {
	// SystemStateContext returns the manager's SystemState property.
	SystemStateContext(ctx context.Context) (*sdbus.Property, error)
	// ListUnitsContext returns every loaded unit.
	ListUnitsContext(ctx context.Context) ([]sdbus.UnitStatus, error)
	// ListUnitsByNamesContext returns the named units, loaded or not.
	ListUnitsByNamesContext(ctx context.Context, units []string) ([]sdbus.UnitStatus, error)
	// Close closes the connection.
	Close()
}

// ConnectFunc opens a connection to systemd. The checker opens one for each
// Baseline and Check and closes it afterwards, so a D-Bus restart during a
// switch costs nothing; Status keeps one open and replaces it when a call
// on it fails.
type ConnectFunc func(ctx context.Context) (Systemd, error)

// BusConnector returns a ConnectFunc for the system bus at address, a D-Bus
// address such as "unix:path=/run/dbus/system_bus_socket"; "" means the
// default system bus (DBUS_SYSTEM_BUS_ADDRESS or the standard socket).
// A connection lives until it is closed or its ctx ends.
func BusConnector(address string) ConnectFunc {
	return func(ctx context.Context) (Systemd, error) {
		if address == "" {
			conn, err := sdbus.NewSystemConnectionContext(ctx)
			if err != nil {
				return nil, fmt.Errorf("connect to the system bus: %w", err)
			}
			return conn, nil
		}
		conn, err := sdbus.NewConnection(func() (*godbus.Conn, error) {
			return dialBus(ctx, address)
		})
		if err != nil {
			return nil, fmt.Errorf("connect to the system bus at %s: %w", address, err)
		}
		return conn, nil
	}
}

// dialBus opens one authenticated bus connection, as go-systemd does for
// the default bus: EXTERNAL authentication by numeric uid, then Hello.
func dialBus(ctx context.Context, address string) (*godbus.Conn, error) {
	conn, err := godbus.Dial(address, godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return conn, nil
}
