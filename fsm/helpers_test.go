package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/events"
)

// Test helpers shared by the fsm tests. Every write goes through the real
// path: an envelope encoded with events.Encode, wrapped in a *raft.Log and
// fed to FSM.ApplyBatch / FSM.Apply.

// t0 is the base event time of the tests (2023-11-14T22:13:20Z).
const t0 = int64(1_700_000_000) * int64(time.Second)

const (
	minute = int64(time.Minute)
	hour   = int64(time.Hour)
	day    = 24 * hour
)

// commandLog wraps an encoded envelope in a Raft command entry.
func commandLog(tb testing.TB, index uint64, env events.Envelope) *raft.Log {
	tb.Helper()
	data, err := events.Encode(env)
	if err != nil {
		tb.Fatalf("encode %s: %v", env.Type(), err)
	}
	return &raft.Log{Type: raft.LogCommand, Index: index, Term: 1, Data: data}
}

// accessToken and refreshToken are the (fake, but prefixed like the real
// ones) tokens of a test session's n-th token pair.
func accessToken(id events.SessionID, n int) string {
	return fmt.Sprintf("sa_%s_%d", id, n)
}

func refreshToken(id events.SessionID, n int) string {
	return fmt.Sprintf("sr_%s_%d", id, n)
}

func ah(id events.SessionID, n int) events.TokenHash { return events.HashToken(accessToken(id, n)) }
func rh(id events.SessionID, n int) events.TokenHash { return events.HashToken(refreshToken(id, n)) }

// harness drives one FSM through the real decode+apply path, numbering log
// entries and request ids itself.
type harness struct {
	tb    testing.TB
	f     *FSM
	index uint64
	req   int
}

func newHarness(tb testing.TB) *harness {
	return &harness{tb: tb, f: New(Config{})}
}

// nextEnv wraps ev in an envelope stamped at the given time with a fresh
// request id.
func (h *harness) nextEnv(at int64, ev events.Event) events.Envelope {
	h.req++
	return events.Envelope{Time: at, RequestID: fmt.Sprintf("req-%d", h.req), Event: ev}
}

// apply applies one event at the given time with a fresh request id.
func (h *harness) apply(at int64, ev events.Event) *Result {
	h.tb.Helper()
	return h.applyEnv(h.nextEnv(at, ev))
}

// applyEnv applies an envelope as the next log entry.
func (h *harness) applyEnv(env events.Envelope) *Result {
	h.tb.Helper()
	h.index++
	out := h.f.ApplyBatch([]*raft.Log{commandLog(h.tb, h.index, env)})
	if len(out) != 1 {
		h.tb.Fatalf("ApplyBatch returned %d responses for 1 log", len(out))
	}
	res, ok := out[0].(*Result)
	if !ok || res == nil {
		h.tb.Fatalf("ApplyBatch response is %T, want *Result", out[0])
	}
	return res
}

// mustApply applies an event that must succeed.
func (h *harness) mustApply(at int64, ev events.Event) *Result {
	h.tb.Helper()
	res := h.apply(at, ev)
	if res.Err != nil {
		h.tb.Fatalf("%s at index %d: unexpected error %v", ev.EventType(), res.Index, res.Err)
	}
	return res
}

// created is the event that creates session id of user with its 0th token
// pair.
func created(id events.SessionID, user events.UserID) *events.SessionCreated {
	return &events.SessionCreated{
		SessionID:   id,
		UserID:      user,
		App:         "default",
		AuthMethod:  events.AuthPassword,
		Device:      events.Device{UserAgent: "Mozilla/5.0 (test)", IP: "192.0.2.1"},
		AccessHash:  ah(id, 0),
		RefreshHash: rh(id, 0),
	}
}

// create creates a session and fails the test if that does not work.
func (h *harness) create(at int64, id events.SessionID, user events.UserID) Session {
	h.tb.Helper()
	res := h.mustApply(at, created(id, user))
	if res.Session == nil {
		h.tb.Fatalf("create %s: no session in the result", id)
	}
	return *res.Session
}

// refreshed rotates session id from its (n-1)-th to its n-th token pair.
func refreshed(id events.SessionID, n int) *events.SessionRefreshed {
	return &events.SessionRefreshed{SessionID: id, PresentedHash: rh(id, n-1), NewAccessHash: ah(id, n), NewRefreshHash: rh(id, n)}
}

// session returns (a copy of) a stored session, which must exist.
func (h *harness) session(id events.SessionID) *Session {
	h.tb.Helper()
	s, ok := h.f.Session(id)
	if !ok {
		h.tb.Fatalf("session %s not found", id)
	}
	return &s
}

// wantAccess checks ValidateAccess of a token at now.
func (h *harness) wantAccess(token string, now int64, want Status) {
	h.tb.Helper()
	s, got := h.f.ValidateAccess(events.HashToken(token), now)
	if got != want {
		h.tb.Errorf("ValidateAccess(%s) at %s = %s (session %q), want %s", token, rel(now), got, s.ID(), want)
	}
}

// wantLookup checks LookupToken of a token at now.
func (h *harness) wantLookup(token string, now int64, wantKind TokenKind, want Status) {
	h.tb.Helper()
	_, kind, got := h.f.LookupToken(events.HashToken(token), now)
	if kind != wantKind || got != want {
		h.tb.Errorf("LookupToken(%s) at %s = (kind %d, %s), want (kind %d, %s)", token, rel(now), kind, got, wantKind, want)
	}
}

// rel shows an event time relative to t0.
func rel(t int64) string {
	d := time.Duration(t - t0)
	if d < 0 {
		return "t0" + d.String()
	}
	return "t0+" + d.String()
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool

	// onWrite, if set, runs after every Write (the concurrency test uses it
	// to interleave applies with the streaming).
	onWrite func()
}

func (s *memSink) Write(p []byte) (int, error) {
	n, err := s.Buffer.Write(p)
	if s.onWrite != nil {
		s.onWrite()
	}
	return n, err
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// snapshotBytes takes a snapshot and persists it into memory.
func snapshotBytes(tb testing.TB, f *FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		tb.Fatalf("Persist left the sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// restored returns a new FSM restored from data.
func restored(tb testing.TB, data []byte) *FSM {
	tb.Helper()
	f := New(Config{})
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		tb.Fatalf("Restore: %v", err)
	}
	return f
}

// closeTracker is an io.ReadCloser that records whether Close was called.
type closeTracker struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (c *closeTracker) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// sameResult compares two results field by field (the Session by value).
func sameResult(a, b *Result) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Index != b.Index || !errors.Is(a.Err, b.Err) || !errors.Is(b.Err, a.Err) || a.Count != b.Count || a.Duplicate != b.Duplicate {
		return false
	}
	if (a.Session == nil) != (b.Session == nil) {
		return false
	}
	return a.Session == nil || reflect.DeepEqual(*a.Session, *b.Session)
}
