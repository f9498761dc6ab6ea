package deploy

import (
	"bytes"
	"io"
	"os"
)

// follower reads the lines a transient unit appends to a file. The file may
// not exist yet: it is opened once it does.
type follower struct {
	path    string
	fromEnd bool // skip what the file holds when first opened
	f       *os.File
	pending []byte
	buf     []byte
}

func newFollower(path string, fromEnd bool) *follower {
	fl := &follower{path: path, fromEnd: fromEnd, buf: make([]byte, 64<<10)}
	fl.open()
	return fl
}

func (fl *follower) open() {
	if fl.f != nil {
		return
	}
	f, err := os.Open(fl.path)
	if err != nil {
		return
	}
	if fl.fromEnd {
		f.Seek(0, io.SeekEnd)
	}
	fl.f = f
}

// lines passes every complete line appended since the last call to emit.
func (fl *follower) lines(emit func(string)) {
	if fl.open(); fl.f == nil {
		return
	}
	for {
		n, _ := fl.f.Read(fl.buf)
		if n == 0 {
			return
		}
		fl.pending = append(fl.pending, fl.buf[:n]...)
		for {
			i := bytes.IndexByte(fl.pending, '\n')
			if i < 0 {
				break
			}
			emit(string(fl.pending[:i]))
			fl.pending = fl.pending[i+1:]
		}
	}
}

// flush passes a last line that has no newline.
func (fl *follower) flush(emit func(string)) {
	if len(fl.pending) > 0 {
		emit(string(fl.pending))
		fl.pending = nil
	}
}

func (fl *follower) close() {
	if fl.f != nil {
		fl.f.Close()
	}
}
