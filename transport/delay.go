package transport

import (
	"bytes"
	"net"
	"sync"
	"time"
)

// SetDelay makes every byte sent from one address to another arrive d later:
// a one-way network latency, such as 40 ms between two regions. It applies
// to connections already open and to new ones; 0 removes it. The sender is
// not held up: writes are queued and delivered when due, so a pipelined
// stream keeps its throughput and only its latency grows, as on a long
// link.
func (f *Faults) SetDelay(from, to string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.delays, [2]string{from, to})
		return
	}
	f.delays[[2]string{from, to}] = d
}

// Delay is the one-way delay from one address to another.
func (f *Faults) Delay(from, to string) time.Duration { return f.delay(from, to) }

func (f *Faults) delay(from, to string) time.Duration {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delays[[2]string{from, to}]
}

// delayQueueLen bounds the writes waiting to be delivered on one connection;
// past it a writer waits, as it would on a full socket buffer.
const delayQueueLen = 256

// delayedWriter delivers a connection's writes each at its due time, in
// order, from one goroutine.
type delayedWriter struct {
	conn  net.Conn
	queue chan delayedChunk

	mu      sync.Mutex
	err     error         // the first failed delivery; later writes return it
	closing chan struct{} // closed by close: deliver what is queued, then close
	once    sync.Once
}

type delayedChunk struct {
	due time.Time
	b   []byte
}

func newDelayedWriter(conn net.Conn) *delayedWriter {
	w := &delayedWriter{conn: conn, queue: make(chan delayedChunk, delayQueueLen), closing: make(chan struct{})}
	go w.deliver()
	return w
}

func (w *delayedWriter) write(b []byte, d time.Duration) (int, error) {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	chunk := delayedChunk{due: time.Now().Add(d), b: bytes.Clone(b)}
	select {
	case w.queue <- chunk:
		return len(b), nil
	case <-w.closing:
		return 0, net.ErrClosed
	}
}

// close lets the bytes already written arrive, then closes the connection,
// as a closed socket still sends what it had accepted.
func (w *delayedWriter) close() error {
	w.once.Do(func() { close(w.closing) })
	return nil
}

func (w *delayedWriter) deliver() {
	defer w.conn.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var chunk delayedChunk
		select {
		case chunk = <-w.queue:
		case <-w.closing:
			select {
			case chunk = <-w.queue:
			default:
				return // closed and nothing left in flight
			}
		}
		if wait := time.Until(chunk.due); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		if _, err := w.conn.Write(chunk.b); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			w.once.Do(func() { close(w.closing) })
			return
		}
	}
}
