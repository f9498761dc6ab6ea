//go:build !unix

package flakeinputs

import "time"

// lchtimes does nothing where symlink times cannot be set: the roots are
// then pruned in name order.
func lchtimes(string, time.Time) {}
