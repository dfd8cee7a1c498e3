package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// eventsIdle is how long a stream may stay silent before it is taken for
// dead and reopened: the server sends a keep-alive every 15s.
var eventsIdle = 45 * time.Second

// Events streams applied events with an index above after (GET
// /v1/events); after 0 starts at the oldest event the node still holds,
// which is every event unless the node restarted or its tail (16384 events)
// rolled over.
//
// With follow false the iteration ends once the events applied so far are
// delivered; with follow true it waits for new events until ctx ends or the
// loop stops. A dropped connection is reopened (on the next address if the
// node is gone) with Last-Event-ID after a backoff bounded by the client's
// retry settings, so no event is lost or repeated. Events of one log entry
// share its index; the client counts those it delivered of an index it
// did not receive whole, and skips them when the reconnect sends that
// index again. A complete replay ends
// the iteration without error; otherwise it ends with a non-nil error, the
// last value yielded: ctx's error when ctx ends, an error matching ErrGone
// when the node no longer holds the events asked for (start again from a
// newer index, or from 0), or the last failure once the retries are spent.
func (c *Client) Events(ctx context.Context, after uint64, follow bool) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		s := &eventStream{c: c, last: after, follow: follow}
		s.run(ctx, yield)
	}
}

type eventStream struct {
	c *Client
	// last is the highest index delivered whole (or the start): a reconnect
	// resumes after it. The events of one index (writes the leader packed
	// into one log entry) carry the SSE id only on the last of them.
	last uint64
	// partial and partialSent: how many events of index partial, which is
	// not yet whole, were delivered. A reconnect replays that index from
	// its start, and so many are skipped.
	partial     uint64
	partialSent int
	// seenOfIndex counts, on the current connection, the events received
	// so far of index seenIndex.
	seenIndex   uint64
	seenOfIndex int
	follow      bool
	// target is the applied index the first answer was served at: a replay
	// (follow false) is complete once it is delivered.
	target uint64
	opened bool
	// group names the log whose indexes the current connection's events
	// carry: the group of its X-Sessiond-Index ("" in a single-region
	// cluster). With regions a node streams its own region's group.
	group string
}

// outcome is how one connection of a stream ended.
type outcome int

const (
	broken  outcome = iota // the connection broke or ended while following
	stopped                // the consumer stopped, or an error was yielded
	done                   // a replay (follow false) is complete
	refused                // no connection (do has retried what it can)
)

func (s *eventStream) run(ctx context.Context, yield func(Event, error) bool) {
	failures := 0
	for {
		start := time.Now()
		delivered, how, err := s.connect(ctx, yield)
		switch {
		case how == stopped || how == done:
			return
		case ctx.Err() != nil:
			yield(Event{}, ctx.Err())
			return
		case how == refused:
			yield(Event{}, err)
			return
		}
		// The stream broke (or ended while following): reopen after a wait.
		// A connection that delivered events or lasted resets the count.
		if delivered > 0 || time.Since(start) > s.c.maxDelay {
			failures = 0
		}
		failures++
		if failures > max(1, s.c.retries) {
			if err == nil {
				err = errors.New("client: event stream: the server keeps ending the stream")
			}
			yield(Event{}, err)
			return
		}
		t := time.NewTimer(s.c.backoff(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			yield(Event{}, ctx.Err())
			return
		case <-t.C:
		}
	}
}

// connect opens one stream and reads it to its end.
func (s *eventStream) connect(ctx context.Context, yield func(Event, error) bool) (delivered int, how outcome, err error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := request{method: http.MethodGet, path: "/v1/events", admin: true, kind: read, query: url.Values{}, header: http.Header{}}
	r.header.Set("Accept", "text/event-stream")
	// Every index before one received in part was received whole, so the
	// stream can resume just before that one: the node then need not hold
	// anything older, and one failed over to starts at the right place.
	from := s.last
	if s.partial > 0 {
		from = max(from, s.partial-1)
	}
	switch {
	case s.opened && from > 0:
		r.header.Set("Last-Event-ID", strconv.FormatUint(from, 10))
	case from > 0:
		r.query.Set("after", strconv.FormatUint(from, 10))
	}
	if !s.follow {
		r.query.Set("follow", "false")
	}
	resp, err := s.c.do(connCtx, r)
	if err != nil {
		return 0, refused, err
	}
	s.seenIndex, s.seenOfIndex = 0, 0
	defer resp.Body.Close()
	at := headerIndex(resp.Header)
	s.group = at.Group
	if !s.opened {
		s.opened = true
		s.target = at.N
	}
	// A silent connection is closed so that the stream is reopened.
	idle := time.AfterFunc(eventsIdle, cancel)
	defer idle.Stop()

	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	var id, typ string
	var data strings.Builder
	for {
		line, rerr := rd.ReadString('\n')
		if rerr != nil {
			if errors.Is(rerr, io.EOF) && line == "" {
				// The server ended the stream cleanly.
				if !s.follow && (delivered == 0 || s.last >= s.target) {
					return delivered, done, nil
				}
				return delivered, broken, nil
			}
			if ctx.Err() == nil && connCtx.Err() != nil {
				rerr = fmt.Errorf("no data for %s", eventsIdle)
			}
			return delivered, broken, fmt.Errorf("client: event stream: %w", rerr)
		}
		idle.Reset(eventsIdle)
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data.Len() > 0 || typ != "" {
				ev, ok, err := s.decode(id, typ, data.String())
				if err != nil {
					yield(Event{}, err)
					return delivered, stopped, nil
				}
				if ok {
					delivered++
					if !yield(ev, nil) {
						return delivered, stopped, nil
					}
				}
			}
			id, typ = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
}

// decode turns one SSE message into an Event; ok is false for one already
// delivered: an event of an index received whole before, or one of an
// index received in part before the connection broke.
func (s *eventStream) decode(id, typ, data string) (Event, bool, error) {
	var ev Event
	if data != "" {
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return ev, false, fmt.Errorf("client: event stream: bad event %q: %w", id, err)
		}
	}
	whole := id != "" // the last event of its index
	if whole {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return ev, false, fmt.Errorf("client: event stream: bad id %q", id)
		}
		ev.Index = n
		ev.EndsIndex = true
	}
	if ev.Type == "" {
		ev.Type = typ
	}
	if ev.Index <= s.last && s.last > 0 {
		return ev, false, nil
	}
	if ev.Index != s.seenIndex {
		s.seenIndex, s.seenOfIndex = ev.Index, 0
	}
	s.seenOfIndex++
	if ev.Index == s.partial && s.seenOfIndex <= s.partialSent {
		return ev, false, nil // delivered before the reconnect
	}
	if ev.Index != s.partial {
		s.partial, s.partialSent = ev.Index, 0
	}
	s.partialSent++
	if whole {
		s.last = ev.Index
		s.partial, s.partialSent = 0, 0
	}
	s.c.indexes.observe(Index{Group: s.group, N: ev.Index})
	return ev, true, nil
}
