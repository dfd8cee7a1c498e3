package testkit

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// LogWriter sends what is written to it to t.Log, one call per write,
// until the test's cleanup closes it, and drops it after. Goroutines that
// outlive a test (Raft's, memberlist's probes, a straggling handler) may
// still log once it has ended, and a t.Log then panics and races with the
// testing package.
type LogWriter struct {
	gate   *logGate
	prefix string
}

// logGate is shared by a LogWriter and the writers Prefixed makes from it;
// closing it waits for the writes in progress.
type logGate struct {
	t      testing.TB
	mu     sync.RWMutex
	closed bool
}

// NewLogWriter returns a writer to t.Log that closes in t's cleanup.
// Cleanups run last-registered first, so make it before whatever logs into
// it registers its own cleanup (a node's Close): it then closes after.
func NewLogWriter(t testing.TB) *LogWriter {
	w := &LogWriter{gate: &logGate{t: t}}
	t.Cleanup(w.Close)
	return w
}

// Prefixed returns a writer that puts prefix before each line and closes
// together with w (one node of several, say).
func (w *LogWriter) Prefixed(prefix string) *LogWriter {
	return &LogWriter{gate: w.gate, prefix: w.prefix + prefix}
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.gate.mu.RLock()
	defer w.gate.mu.RUnlock()
	if !w.gate.closed {
		w.gate.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Close stops the writing to t.Log; later writes are dropped.
func (w *LogWriter) Close() {
	w.gate.mu.Lock()
	w.gate.closed = true
	w.gate.mu.Unlock()
}

// Logger is a text logger at level that writes to a NewLogWriter(t).
func Logger(t testing.TB, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(NewLogWriter(t), &slog.HandlerOptions{Level: level}))
}
