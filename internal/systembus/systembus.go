// Package systembus opens go-systemd connections to the system bus: the
// default one, or the bus of a systemd sandbox by its address.
package systembus

import (
	"context"
	"fmt"
	"os"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Dial connects to systemd over the system bus at address, a D-Bus address
// such as "unix:path=/run/dbus/system_bus_socket"; "" means the default
// system bus (DBUS_SYSTEM_BUS_ADDRESS or the standard socket). The
// connection lives until it is closed or ctx ends.
func Dial(ctx context.Context, address string) (*sdbus.Conn, error) {
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
