package tailnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// lingerTimeout bounds the graceful close of one dialed connection.
const lingerTimeout = time.Second

// ackGrace is how long a closing node waits, after its connections closed
// gracefully, for their last ACKs to leave.
const ackGrace = 20 * time.Millisecond

// Why connections linger: if a node goes away right after closing a TCP
// connection, the peer's FIN is never acknowledged, and the peer's TCP
// stack keeps retransmitting it to this node's address for minutes. Each
// retransmission makes the peer start a WireGuard handshake towards this
// node's key. When the node is restarted from persisted state (same key),
// the peer's queued retransmission fires the moment the restarted node's
// own handshake arrives, the two handshakes cross, both are discarded and
// the first dial waits out WireGuard's 5 s retry. Finishing the close
// handshake before the node stops leaves the peer nothing to send.

// trackedConn is a connection dialed through a [Node]. Close half-closes it
// and lets the node finish the TCP close handshake in the background.
type trackedConn struct {
	net.Conn
	l    *lingerer
	once sync.Once
}

// Close sends FIN and returns; the node drains the connection until the
// peer's FIN (or lingerTimeout), then releases it.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.closeGracefully(c) })
	return nil
}

// lingerer owns the goroutines that close connections gracefully.
type lingerer struct {
	mu       sync.Mutex
	open     map[*trackedConn]struct{}
	wg       sync.WaitGroup
	closed   bool // track closes new connections at once
	waiting  bool // shutdown waits on wg; no more Adds
	lingered bool // some connection was closed gracefully
}

func newLingerer() *lingerer {
	return &lingerer{open: make(map[*trackedConn]struct{})}
}

// track wraps c; after shutdown it closes c at once.
func (l *lingerer) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return c
	}
	l.open[tc] = struct{}{}
	return tc
}

func (l *lingerer) closeGracefully(c *trackedConn) {
	l.mu.Lock()
	delete(l.open, c)
	if l.waiting {
		// shutdown is already waiting; a late close must not join it.
		l.mu.Unlock()
		c.Conn.Close()
		return
	}
	l.wg.Add(1)
	l.lingered = true
	l.mu.Unlock()
	go func() { // owned by l: shutdown waits for it
		defer l.wg.Done()
		drainAndClose(c.Conn)
	}()
}

// drainAndClose half-closes c, reads until the peer closes its side or
// lingerTimeout passes, and closes c.
func drainAndClose(c net.Conn) {
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	if err := cw.CloseWrite(); err != nil {
		return
	}
	if err := c.SetReadDeadline(time.Now().Add(lingerTimeout)); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// shutdown gracefully closes every connection still open and waits for
// all graceful closes, at most about lingerTimeout.
func (l *lingerer) shutdown() {
	l.mu.Lock()
	l.closed = true
	open := make([]*trackedConn, 0, len(l.open))
	for c := range l.open {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
	l.mu.Lock()
	l.waiting = true
	lingered := l.lingered
	l.mu.Unlock()
	l.wg.Wait()
	if lingered {
		// The ACK of the peer's FIN leaves through netstack, WireGuard and
		// magicsock goroutines after the reader saw EOF; give it a moment
		// before the node is torn down.
		time.Sleep(ackGrace)
	}
}
