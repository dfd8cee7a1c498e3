package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
)

// groupedServer serves events as the node does when writes were packed
// into one log entry: several in a row share an index, and only the last
// of an index carries the SSE id. Each connection starts after
// Last-Event-ID (or ?after=), sends at most perConn events, then cuts the
// connection, wherever that falls.
type groupedServer struct {
	indexes []uint64 // the index of each event, in order
	perConn int
	mu      sync.Mutex
	starts  []string
}

func (s *groupedServer) handler(w http.ResponseWriter, r *http.Request) {
	after, start := resumePoint(r)
	s.mu.Lock()
	s.starts = append(s.starts, start)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Sessiond-Index", strconv.FormatUint(s.indexes[len(s.indexes)-1], 10))
	w.WriteHeader(http.StatusOK)
	sent := 0
	for i, index := range s.indexes {
		if index <= after {
			continue
		}
		if sent == s.perConn {
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		id := ""
		if i == len(s.indexes)-1 || s.indexes[i+1] != index {
			id = fmt.Sprintf("id: %d\n", index)
		}
		fmt.Fprintf(w, "%sevent: SessionCreated\ndata: {\"index\":%d,\"type\":\"SessionCreated\",\"time\":\"2025-01-02T03:04:05.000Z\",\"session_id\":\"e%d\"}\n\n", id, index, i)
		sent++
	}
}

// Cuts that fall inside an index, at its end and in the next one: every
// event arrives once, in order, and each reconnect resumes after the last
// index received whole.
func TestEvents_EventsSharingAnIndexArriveOnceAcrossReconnects(t *testing.T) {
	t.Parallel()
	s := &groupedServer{indexes: []uint64{3, 3, 3, 4, 6, 6, 6, 7, 9, 9}, perConn: 5}
	f := newFake(t, s.handler)
	c := newClient(t, []string{f.URL}, client.WithRetry(10, time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for ev, err := range c.Events(ctx, 0, false) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%d", ev.SessionID, ev.Index))
		if ends := ev.SessionID == "e2" || ev.SessionID == "e3" || ev.SessionID == "e6" || ev.SessionID == "e7" || ev.SessionID == "e9"; ev.EndsIndex != ends {
			t.Errorf("event %s: EndsIndex %v", ev.SessionID, ev.EndsIndex)
		}
	}
	var want []string
	for i, index := range s.indexes {
		want = append(want, fmt.Sprintf("e%d@%d", i, index))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Connection 1 sends e0-e3 (indexes 3 and 4 whole) and e4, the first
	// of index 6; connection 2 resumes after 5, just before the index
	// received in part, and sends index 6 again (e4 skipped), 7, and e8,
	// the first of 9; connection 3 resumes after 8 and sends index 9 again
	// (e8 skipped).
	if want := "[after= id=5 id=8]"; fmt.Sprint(s.starts) != want {
		t.Errorf("connections started at %v, want %s", s.starts, want)
	}
}
