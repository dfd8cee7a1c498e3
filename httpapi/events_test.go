package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/node"
)

type sseEvent struct {
	id    uint64
	typ   string
	data  map[string]any
	field string // raw data line
}

// readEvents reads n events from an SSE stream (skipping comments).
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseUint(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.field = line[6:]
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d of %d events: %v", len(out), n, sc.Err())
	}
	return out
}

func openEvents(t *testing.T, a *testAPI, query string, hdrs ...string) (*http.Response, *bufio.Scanner, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/v1/events"+query, nil)
	req.Header.Set("X-API-Key", testAPIKey)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Set(hdrs[i], hdrs[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close(); cancel() })
	return resp, bufio.NewScanner(resp.Body), cancel
}

func TestEvents_ReplayThenFollowThenResume(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	first := a.create(t, "alice", nil)
	a.admin(t, http.MethodDelete, "/v1/sessions/"+first.SessionID, nil)

	resp, sc, cancel := openEvents(t, a, "?after=0")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	replayed := readEvents(t, sc, 2)
	if replayed[0].typ != "SessionCreated" || replayed[0].data["session_id"] != first.SessionID || replayed[0].data["user_id"] != "alice" {
		t.Errorf("first replayed event %+v", replayed[0])
	}
	if replayed[1].typ != "SessionRevoked" || replayed[1].data["reason"] != "admin" || replayed[1].id <= replayed[0].id {
		t.Errorf("second replayed event %+v", replayed[1])
	}
	// Following: an event applied now arrives on the open stream.
	second := a.create(t, "bob", nil)
	live := readEvents(t, sc, 1)[0]
	if live.typ != "SessionCreated" || live.data["session_id"] != second.SessionID {
		t.Errorf("followed event %+v", live)
	}
	for _, e := range append(replayed, live) {
		for _, secret := range []string{first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken} {
			if strings.Contains(e.field, secret) || strings.Contains(e.field, secret[3:]) {
				t.Errorf("event %d carries a token", e.id)
			}
		}
	}
	cancel()

	// Events while disconnected, then a reconnect with Last-Event-ID: the
	// missed ones exactly once, in order.
	var missed []string
	for _, u := range []string{"carol", "dave", "erin"} {
		missed = append(missed, a.create(t, u, nil).SessionID)
	}
	_, sc, _ = openEvents(t, a, "?after=0", "Last-Event-ID", strconv.FormatUint(live.id, 10))
	resumed := readEvents(t, sc, 3)
	for i, e := range resumed {
		if e.data["session_id"] != missed[i] {
			t.Errorf("resumed event %d is %+v, want the creation of %s", i, e, missed[i])
		}
		if i > 0 && e.id <= resumed[i-1].id {
			t.Errorf("resumed events out of order: %d after %d", e.id, resumed[i-1].id)
		}
	}
	if resumed[0].id <= live.id {
		t.Errorf("resume repeated event %d (last seen %d)", resumed[0].id, live.id)
	}
}

func TestEvents_FollowFalseEndsAfterReplay(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	a.create(t, "alice", nil)
	resp, sc, _ := openEvents(t, a, "?after=0&follow=false")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	readEvents(t, sc, 1)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			t.Errorf("more events after the replay: %q", sc.Text())
		}
	}
}

func TestEvents_BadInputAndAuth(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	r := a.do(t, http.MethodGet, "/v1/events", nil)
	expectError(t, "no API key", r, http.StatusUnauthorized, "unauthenticated")
	r = a.admin(t, http.MethodGet, "/v1/events?after=x", nil)
	expectError(t, "after=x", r, http.StatusBadRequest, "bad_request", "after")
	r = a.admin(t, http.MethodGet, "/v1/events?follow=maybe", nil)
	expectError(t, "follow=maybe", r, http.StatusBadRequest, "bad_request", "follow")
}

// Writes proposed together share one log entry and so one index. The SSE
// id, which a reconnect resumes after, comes only with the last event of
// an index, so that a reader cut off inside one gets all of it again.
func TestEvents_EventsOfOneIndexShareOneID(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	const writes = 200
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			if _, err := a.node.CreateSession(context.Background(), node.CreateRequest{
				UserID: events.UserID(fmt.Sprintf("user%d", i)), App: "default", AuthMethod: events.AuthImpersonation}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	_, sc, _ := openEvents(t, a, "?after=0&follow=false")
	evs := readEvents(t, sc, writes)
	shared := 0
	var lastID uint64
	for i, e := range evs {
		index := uint64(e.data["index"].(float64))
		lastOfIndex := i == len(evs)-1 || uint64(evs[i+1].data["index"].(float64)) != index
		switch {
		case lastOfIndex && e.id != index:
			t.Errorf("event %d, the last of index %d, has id %d", i, index, e.id)
		case !lastOfIndex && e.id != 0:
			t.Errorf("event %d has id %d, but more events of index %d follow", i, e.id, index)
		case !lastOfIndex:
			shared++
		}
		if e.id != 0 {
			if e.id <= lastID {
				t.Errorf("ids out of order: %d after %d", e.id, lastID)
			}
			lastID = e.id
		}
	}
	if shared == 0 {
		t.Fatalf("%d concurrent creates all took an index of their own: no batch entry to check", writes)
	}
}

// A replay longer than one read of the node's tail (512 events), with
// indexes shared by packed writes, arrives whole: with follow=false the
// stream ends only after the last event.
func TestEvents_LongReplayOfPackedWritesIsComplete(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	const writes = 1300
	var wg sync.WaitGroup
	errs := make(chan error, writes)
	for i := range writes {
		wg.Go(func() {
			_, err := a.node.CreateSession(context.Background(), node.CreateRequest{
				UserID: events.UserID(fmt.Sprintf("user%d", i)), App: "default", AuthMethod: events.AuthImpersonation})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, sc, _ := openEvents(t, a, "?after=0&follow=false")
	evs := readEvents(t, sc, writes)
	indexes := map[float64]bool{}
	for _, e := range evs {
		indexes[e.data["index"].(float64)] = true
	}
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			t.Errorf("more than %d events: %q", writes, sc.Text())
		}
	}
	t.Logf("%d events in %d indexes", writes, len(indexes))
}
