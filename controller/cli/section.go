package cli

import (
	"io"
	"os"
)

// newSectionReader reads the first n bytes of f without moving f's offset,
// so several uploads can read the same archive at once.
func newSectionReader(f *os.File, n int64) io.Reader { return io.NewSectionReader(f, 0, n) }
