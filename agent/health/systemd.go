package health

import (
	"context"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/pantheros/panther/internal/systembus"
)

// Systemd is the part of go-systemd's *dbus.Conn that health uses.
type Systemd interface {
	// SystemStateContext returns the manager's SystemState property.
	SystemStateContext(ctx context.Context) (*sdbus.Property, error)
	// ListUnitsContext returns every loaded unit.
	ListUnitsContext(ctx context.Context) ([]sdbus.UnitStatus, error)
	// ListUnitsByNamesContext returns the named units, loaded or not.
	ListUnitsByNamesContext(ctx context.Context, units []string) ([]sdbus.UnitStatus, error)
	// GetUnitTypePropertyContext returns one property of a unit's type
	// interface (e.g. "Service", "ExecMainStatus").
	GetUnitTypePropertyContext(ctx context.Context, unit, unitType, propertyName string) (*sdbus.Property, error)
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
		conn, err := systembus.Dial(ctx, address)
		if err != nil {
			return nil, err
		}
		return conn, nil
	}
}
