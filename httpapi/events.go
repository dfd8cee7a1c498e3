package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/node"
)

// GET /v1/events (admin): Server-Sent Events of applied events
// (docs/api.md#endpoints). It replays what this node holds after ?after= (or
// the Last-Event-ID a reconnecting client sends), then follows new events as
// they are applied. Each event's id is its Raft index; events of one log entry
// share it and only the last of them carries the id, so a reconnect resumes
// after the last index received whole: nothing lost, and nothing repeated
// unless the stream broke inside an index. Events older than the node's
// in-memory tail answer 410. ?follow=false ends the stream once the replay is
// done.

// EventSource is the optional role the event stream needs; New finds it on
// Config.Backend (*node.Node plays it), and without it /v1/events is 404.
type EventSource interface {
	Events(after uint64, max int) ([]node.EventRecord, <-chan struct{}, error)
	// OldestEvent is the index after which this node holds every event.
	OldestEvent() uint64
	// NewestEvent is the index of the last event held.
	NewestEvent() uint64
}

// GroupEvents is the optional role that serves ?group=: the event stream
// of one Raft group of a cluster with regions (*node.Node plays it).
type GroupEvents interface {
	EventsOf(group string) (node.EventTail, error)
}

const (
	eventsBatch     = 512
	eventsKeepAlive = 15 * time.Second
	eventsRoute     = "/v1/events"
)

func (s *Server) eventRoutes(e *echo.Echo) {
	e.GET(eventsRoute, s.streamEvents, s.requireAdmin)
}

type eventJSON struct {
	node.EventRecord
	Time apiTime `json:"time"`
}

func (s *Server) streamEvents(c echo.Context) error {
	var src EventSource = s.eventSource
	if src == nil {
		return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "this node keeps no event stream"}
	}
	if group := c.QueryParam("group"); group != "" {
		groups, ok := s.eventSource.(GroupEvents)
		if !ok {
			return badRequest("this node has no groups to choose from")
		}
		tail, err := groups.EventsOf(group)
		if err != nil {
			return badRequest("group %q: no such group in this cluster", group)
		}
		src = tail
	}
	after, given, err := eventsStart(c)
	if err != nil {
		return err
	}
	if !given {
		after = src.OldestEvent()
	}
	follow := true
	switch c.QueryParam("follow") {
	case "", "true", "1":
	case "false", "0":
		follow = false
	default:
		return badRequest("follow must be true or false")
	}
	// A replay (follow=false) ends with the events applied when it began,
	// also when writes keep coming.
	replayEnd := src.NewestEvent()
	recs, _, err := src.Events(after, eventsBatch)
	if errors.Is(err, node.ErrEventsGone) {
		return &apiError{Status: http.StatusGone, Code: "gone",
			Message: fmt.Sprintf("events after index %d are no longer held by this node; start again from a newer index", after)}
	}
	if err != nil {
		return err
	}

	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	res.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(res.Writer)
	ctx := c.Request().Context()
	keepAlive := time.NewTicker(eventsKeepAlive)
	defer keepAlive.Stop()
	for {
		for i, r := range recs {
			data, err := json.Marshal(eventJSON{EventRecord: r, Time: apiTime(r.Time)})
			if err != nil {
				return nil // cannot happen: plain fields
			}
			_ = rc.SetWriteDeadline(time.Now().Add(eventsKeepAlive))
			// Several events can share an index (writes proposed together);
			// the id, which a reconnect resumes after, comes with the last of
			// them, so a reader cut off inside an index gets all of it again.
			// Events of one index always arrive in one recs.
			id := ""
			if i == len(recs)-1 || recs[i+1].Index != r.Index {
				id = fmt.Sprintf("id: %d\n", r.Index)
			}
			if _, err := fmt.Fprintf(res, "%sevent: %s\ndata: %s\n\n", id, r.Type, data); err != nil {
				return nil // the client went away
			}
			after = r.Index
		}
		if !follow && after >= replayEnd {
			_ = rc.Flush()
			return nil
		}
		// Asked again rather than judged by the count: a read returns
		// more than eventsBatch when it finishes an index. The channel of
		// the read that found nothing new is the one to wait on.
		var changed <-chan struct{}
		recs, changed, err = src.Events(after, eventsBatch)
		if err == nil && len(recs) == 0 {
			if err := rc.Flush(); err != nil {
				return nil
			}
			if !follow {
				return nil
			}
			if !s.waitForEvents(ctx, changed, keepAlive.C, res, rc) {
				return nil
			}
			recs, _, err = src.Events(after, eventsBatch)
		}
		if err != nil {
			// The tail moved past this reader (or a snapshot reset it): end
			// the stream; the reconnect gets 410 and starts over.
			return nil
		}
	}
}

// waitForEvents waits for new events, sending a comment line now and then
// so proxies keep the connection open. False means stop streaming.
func (s *Server) waitForEvents(ctx context.Context, changed <-chan struct{}, tick <-chan time.Time, res *echo.Response, rc *http.ResponseController) bool {
	for {
		select {
		case <-changed:
			return true
		case <-ctx.Done():
			return false
		case <-s.draining.Done():
			return false
		case <-tick:
			_ = rc.SetWriteDeadline(time.Now().Add(eventsKeepAlive))
			if _, err := fmt.Fprint(res, ": keep-alive\n\n"); err != nil {
				return false
			}
			if rc.Flush() != nil {
				return false
			}
		}
	}
}

// eventsStart is the index to stream after: Last-Event-ID (a reconnect)
// wins over ?after=; neither means from the oldest event held (given false).
func eventsStart(c echo.Context) (after uint64, given bool, err error) {
	raw := c.Request().Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if raw == "" {
		raw, field = c.QueryParam("after"), "after"
	}
	if raw == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, false, badRequest("%s must be a non-negative integer (an event index)", field)
	}
	return v, true, nil
}
