package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
)

// sseServer serves events 1..total over SSE. Each connection starts after
// Last-Event-ID (or ?after=) and sends at most perConn events, then ends
// the stream: cleanly, or by cutting the connection mid-message.
type sseServer struct {
	total   uint64
	perConn int
	cut     bool
	// follow streams stay open after the last event until the client goes.
	mu      sync.Mutex
	starts  []string // Last-Event-ID or after= of each connection
	follows []string
}

func (s *sseServer) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
		after, start := resumePoint(r)
		s.mu.Lock()
		s.starts = append(s.starts, start)
		s.follows = append(s.follows, r.URL.Query().Get("follow"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Sessiond-Index", strconv.FormatUint(s.total, 10))
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		fmt.Fprint(w, ": keep-alive\n\n")
		sent := 0
		for i := after + 1; i <= s.total; i++ {
			if sent == s.perConn {
				if s.cut {
					// Half a message, then the connection drops.
					fmt.Fprintf(w, "id: %d\nevent: SessionCreated\n", i)
					fl.Flush()
					panic(http.ErrAbortHandler)
				}
				return
			}
			fmt.Fprintf(w, "id: %d\nevent: SessionCreated\ndata: {\"index\":%d,\"type\":\"SessionCreated\",\"time\":\"2025-01-02T03:04:05.000Z\",\"session_id\":\"s%d\",\"user_id\":\"u\"}\n\n", i, i, i)
			sent++
		}
		fl.Flush()
		if r.URL.Query().Get("follow") == "false" {
			return
		}
		<-r.Context().Done()
	}
}

// resumePoint is where an SSE request asks to resume: after its
// Last-Event-ID, else after ?after= (0: from the start). start says which,
// as "id=…" or "after=…".
func resumePoint(r *http.Request) (after uint64, start string) {
	from := r.Header.Get("Last-Event-ID")
	start = "id=" + from
	if from == "" {
		from = r.URL.Query().Get("after")
		start = "after=" + from
	}
	after, _ = strconv.ParseUint(from, 10, 64)
	return after, start
}

func collect(t *testing.T, seq func(func(client.Event, error) bool), stopAt uint64) ([]uint64, error) {
	t.Helper()
	var ids []uint64
	var last error
	seq(func(ev client.Event, err error) bool {
		if err != nil {
			last = err
			return false
		}
		ids = append(ids, ev.Index)
		if ev.SessionID != fmt.Sprintf("s%d", ev.Index) || ev.Time.Year() != 2025 || ev.Type != "SessionCreated" {
			t.Errorf("event %+v", ev)
		}
		return stopAt == 0 || ev.Index < stopAt
	})
	return ids, last
}

func wantIDs(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if len(got) != int(to-from+1) {
		t.Fatalf("ids %v, want %d..%d", got, from, to)
	}
	for i, id := range got {
		if id != from+uint64(i) {
			t.Fatalf("ids %v, want %d..%d without gaps or repeats", got, from, to)
		}
	}
}

func TestEvents_ReconnectsAfterACutWithLastEventID(t *testing.T) {
	t.Parallel()
	s := &sseServer{total: 7, perConn: 3, cut: true}
	f := newFake(t, s.handler(t))
	c := newClient(t, []string{f.URL}, client.WithRetry(3, time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := collect(t, c.Events(ctx, 2, true), 7)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, ids, 3, 7)
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := []string{"after=2", "id=5"}; fmt.Sprint(s.starts) != fmt.Sprint(want) {
		t.Errorf("connections started at %v, want %v", s.starts, want)
	}
	if c.LastIndex() != 7 {
		t.Errorf("LastIndex %d", c.LastIndex())
	}
}

func TestEvents_FollowFalseEndsAfterTheReplay(t *testing.T) {
	t.Parallel()
	s := &sseServer{total: 5, perConn: 100}
	f := newFake(t, s.handler(t))
	c := newClient(t, []string{f.URL})
	ids, err := collect(t, c.Events(context.Background(), 0, false), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, ids, 1, 5)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.starts) != 1 || s.starts[0] != "after=" || s.follows[0] != "false" {
		t.Errorf("connections %v follow %v", s.starts, s.follows)
	}
}

func TestEvents_FollowFalseResumesAStreamEndedEarly(t *testing.T) {
	t.Parallel()
	// The server ends the stream cleanly after 2 events although it had
	// applied 6 when it answered: the replay is not complete yet.
	s := &sseServer{total: 6, perConn: 2}
	f := newFake(t, s.handler(t))
	c := newClient(t, []string{f.URL}, client.WithRetry(3, time.Millisecond))
	ids, err := collect(t, c.Events(context.Background(), 0, false), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, ids, 1, 6)
}

func TestEvents_FailsOverToAnotherNode(t *testing.T) {
	t.Parallel()
	s := &sseServer{total: 4, perConn: 100}
	f := newFake(t, s.handler(t))
	c := newClient(t, []string{deadAddr(t), f.URL})
	ids, err := collect(t, c.Events(context.Background(), 0, false), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, ids, 1, 4)
}

func TestEvents_GoneIsATypedError(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusGone, `{"error":{"code":"gone","message":"events after index 1 are no longer held by this node"}}`)
	})
	c := newClient(t, []string{f.URL})
	ids, err := collect(t, c.Events(context.Background(), 1, true), 0)
	if len(ids) != 0 || !client.IsGone(err) || !errors.Is(err, client.ErrGone) {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	if f.count() != 1 {
		t.Errorf("410 retried: %d requests", f.count())
	}
}

func TestEvents_CancelEndsWithTheContextError(t *testing.T) {
	t.Parallel()
	s := &sseServer{total: 2, perConn: 100}
	f := newFake(t, s.handler(t))
	c := newClient(t, []string{f.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids []uint64
	var last error
	for ev, err := range c.Events(ctx, 0, true) {
		if err != nil {
			last = err
			break
		}
		ids = append(ids, ev.Index)
		if ev.Index == 2 {
			cancel() // the stream now waits for more: cancelling ends it
		}
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("ended with %v", last)
	}
	wantIDs(t, ids, 1, 2)
}

func TestEvents_SilentConnectionIsReopened(t *testing.T) {
	restore := client.SetEventsIdle(200 * time.Millisecond)
	defer restore()
	var mu sync.Mutex
	conns := 0
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		if n == 1 {
			w.(http.Flusher).Flush()
			<-r.Context().Done() // silent: no keep-alive
			return
		}
		if r.Header.Get("Last-Event-ID") != "" {
			t.Errorf("reconnect sent Last-Event-ID %q before any event", r.Header.Get("Last-Event-ID"))
		}
		fmt.Fprint(w, "id: 1\nevent: SessionCreated\ndata: {\"index\":1,\"type\":\"SessionCreated\",\"time\":\"2025-01-02T03:04:05.000Z\",\"session_id\":\"s1\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c := newClient(t, []string{f.URL}, client.WithRetry(3, time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := collect(t, c.Events(ctx, 0, true), 1)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, ids, 1, 1)
}
