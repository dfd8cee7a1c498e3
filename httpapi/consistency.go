package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/node"
)

// The read-consistency policy (docs/api.md#consistency): how fresh the state
// a read is answered from must be, and what every answer says about it. A
// read is served from this node's memory, which keeps validation cheap on
// every node; a caller may pay, per request, for more: its own write
// included (min_index, waiting up to ?wait=), a linearizable read
// (consistency=leader: a read barrier through the leader), or a staleness
// bound for a validation tighter than the node's --max-stale (max_stale,
// which can never loosen it). What cannot be had in time is 503, never an
// older state. Every answer carries X-Sessiond-Index and
// X-Sessiond-Last-Contact, so a client can judge an answer's freshness and
// ask for read-your-writes next. The node enforces its own --max-stale on
// every validation whether or not anything here runs. Only the Cluster role
// is used here.

const (
	headerIndex       = "X-Sessiond-Index"
	headerLastContact = "X-Sessiond-Last-Contact"
	headerMinIndex    = "X-Sessiond-Min-Index"
)

// Longest min_index wait a read may ask for, and the default.
const (
	defaultReadWait = 2 * time.Second
	maxReadWait     = 30 * time.Second
)

// consistencyHeaders gives every answer X-Sessiond-Index (the applied
// index of this node's own group, unless the handler set the index of its
// write or read) and X-Sessiond-Last-Contact.
func (s *Server) consistencyHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		res := c.Response()
		res.Before(func() {
			h := res.Header()
			if h.Get(headerIndex) == "" {
				if own, err := s.cluster.AppliedIn(""); err == nil {
					h.Set(headerIndex, own.String())
				}
			}
			h.Set(headerLastContact, strconv.FormatInt(lastContactMillis(s.cluster.LastContact()), 10))
		})
		return next(c)
	}
}

func lastContactMillis(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// setIndex sets X-Sessiond-Index: the index of a write, or the applied
// index a read was served at. With regions it names its group (eu:1234).
func setIndex(c echo.Context, index node.Index) {
	c.Response().Header().Set(headerIndex, index.String())
}

// setAppliedIndex sets X-Sessiond-Index to the index this node has applied
// now in group ("": its own): the state a read was just judged in (a
// validation may have caught up while it ran).
func (s *Server) setAppliedIndex(c echo.Context, group string) {
	if i, err := s.cluster.AppliedIn(group); err == nil {
		setIndex(c, i)
	}
}

// readAt prepares a read of group's state ("": this node's own group) and
// sets X-Sessiond-Index to the applied index it is served at. It honours:
//   - min_index (query, or header X-Sessiond-Min-Index) within ?wait=
//     (default 2s, at most 30s): read-your-writes on any node. With
//     regions an index names its group (eu:1234), and a comma-separated
//     list waits on each group it names;
//   - consistency=leader: the group's leader confirms its leadership and
//     this node applies up to the leader's commit index first
//     (linearizable).
func (s *Server) readAt(c echo.Context, scope readScope) error {
	wait, err := readWait(c)
	if err != nil {
		return err
	}
	raw := c.QueryParam("min_index")
	if raw == "" {
		raw = c.Request().Header.Get(headerMinIndex)
	}
	if raw != "" {
		indexes, err := node.ParseIndexes(raw)
		if err != nil {
			return badRequest("min_index: %v", err)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
		stop := context.AfterFunc(s.draining, cancel)
		defer func() {
			stop()
			cancel()
		}()
		for _, minIndex := range indexes {
			s.log.Debug("read waiting for index", "min_index", minIndex.String(), "wait", wait)
			if err := s.cluster.WaitForIndex(ctx, minIndex); err != nil {
				if errors.Is(err, node.ErrUnknownGroup) {
					return badRequest("min_index %s names no group of this cluster", minIndex)
				}
				return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
					Message: "index " + minIndex.String() + " not reached within " + wait.String()}
			}
		}
	}
	switch consistency := c.QueryParam("consistency"); consistency {
	case "", "default", "stale":
	case "leader":
		if err := s.confirmWithLeader(c, wait, scope); err != nil {
			return err
		}
	default:
		return badRequest("consistency must be leader or default")
	}
	s.setAppliedIndex(c, scope.group)
	return nil
}

// readScope is what a read is about, for the read-consistency options: the
// group whose applied index it is served at ("": this node's own), and for
// a read of a token or a session, the barrier consistency=leader runs (one
// that follows the session to where its user's home moved).
type readScope struct {
	group   string
	barrier func(ctx context.Context) error // nil: the group's own
}

// groupScope is a read of one group's state.
func groupScope(group string) readScope { return readScope{group: group} }

// tokenScope is a read of a token's session.
func (s *Server) tokenScope(token string) readScope {
	return readScope{group: s.sessions.TokenGroup(token), barrier: func(ctx context.Context) error {
		_, err := s.cluster.ReadBarrierForToken(ctx, token)
		return err
	}}
}

// sessionScope is a read of a session by id.
func (s *Server) sessionScope(id events.SessionID) readScope {
	return readScope{group: s.sessions.SessionGroup(id), barrier: func(ctx context.Context) error {
		_, err := s.cluster.ReadBarrierForSession(ctx, id)
		return err
	}}
}

// readWait is ?wait=, default 2s, capped at 30s.
func readWait(c echo.Context) (time.Duration, error) {
	w := c.QueryParam("wait")
	if w == "" {
		return defaultReadWait, nil
	}
	wait, err := time.ParseDuration(w)
	if err != nil || wait < 0 {
		return 0, badRequest("wait must be a non-negative Go duration such as 500ms or 2s")
	}
	return min(wait, maxReadWait), nil
}

// confirmWithLeader runs the read barrier of scope: through the leader of
// its group, following a session to where its user moved.
func (s *Server) confirmWithLeader(c echo.Context, wait time.Duration, scope readScope) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), max(wait, time.Second))
	defer cancel()
	barrier := scope.barrier
	if barrier == nil {
		barrier = func(ctx context.Context) error {
			_, err := s.cluster.ReadBarrierIn(ctx, scope.group)
			return err
		}
	}
	if err := barrier(ctx); err != nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "no leader confirmed this read in time"}
	}
	return nil
}

// vouchTighter applies ?max_stale=, which can only tighten the node's own
// bound (--max-stale): when this node's state of group ("": its own) is
// older than the smaller of the two, it confirms through the group's leader
// before the token is judged, and answers 503 when it cannot. The node's
// own bound is enforced by every validation (node.Validate,
// node.Introspect) whether or not this runs.
func (s *Server) vouchTighter(c echo.Context, group string) error {
	v := c.QueryParam("max_stale")
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return badRequest("max_stale must be a non-negative Go duration")
	}
	if d >= s.cluster.MaxStale() {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), defaultReadWait)
	defer cancel()
	if err := s.cluster.VouchIn(ctx, group, d); err != nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "this node cannot confirm its state within max_stale " + d.String()}
	}
	return nil
}
