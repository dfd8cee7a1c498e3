package node

import (
	"context"
	"errors"
	"sync"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// The event tail: the last applied events, kept in memory for GET /v1/events
// (docs/api.md#endpoints). Each node keeps its own tail of what it applied; a
// reader asks for events after an index and gets them in log order, then waits
// for more. Records carry ids, times, reasons and outcomes — never a token, a
// token hash, a password hash or an email.

// EventTailSize is how many applied events a node keeps for readers.
const EventTailSize = 16384

// ErrEventsGone means the events after the asked index are no longer held
// (the tail moved on, or the node restarted or installed a snapshot since).
var ErrEventsGone = errors.New("events no longer held")

// EventRecord is one applied event as readers see it.
type EventRecord struct {
	// Group names the Raft group the event was applied in, in a cluster
	// with regions (its region, or global); "" otherwise.
	Group     string `json:"group,omitempty"`
	Index     uint64 `json:"index"`
	Type      string `json:"type"`
	Time      int64  `json:"-"` // Unix nanoseconds
	SessionID string `json:"session_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	App       string `json:"app,omitempty"`
	Method    string `json:"auth_method,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Scope     string `json:"scope,omitempty"`
	// Count is how many sessions the event revoked, removed or touched.
	Count int `json:"count,omitempty"`
	// Error names the rule that refused the event ("" when it applied).
	Error     string `json:"error,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

type eventTail struct {
	mu sync.Mutex
	// buf is a ring of the last len(buf) records; next is where the next
	// one goes, n how many are held.
	buf  []EventRecord
	next int
	n    int
	// floor is the highest index whose successors are not all held: after
	// a restart or a snapshot install, the events up to it are unknown.
	floor uint64
	last  uint64
	// changed is closed and replaced when a record is added.
	changed chan struct{}
}

func newEventTail(size int, floor uint64) *eventTail {
	return &eventTail{buf: make([]EventRecord, size), floor: floor, last: floor, changed: make(chan struct{})}
}

// add appends the records of one apply, under one lock: a log entry's
// records (a batch entry has several, at one index) are never seen in part.
func (t *eventTail) add(rs []EventRecord) {
	if len(rs) == 0 {
		return
	}
	t.mu.Lock()
	for _, r := range rs {
		if t.n == len(t.buf) {
			// The oldest record falls out: a reader must now start after
			// its index (records of that index still held are not all).
			t.floor = t.buf[t.next].Index
		} else {
			t.n++
		}
		t.buf[t.next] = r
		t.next = (t.next + 1) % len(t.buf)
		t.last = r.Index
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// reset forgets everything up to index (a snapshot was installed).
func (t *eventTail) reset(index uint64) {
	t.mu.Lock()
	t.n, t.next, t.floor, t.last = 0, 0, index, index
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// after returns the records with index > after, oldest first, and a
// channel closed when more arrive. It returns about max: never fewer when
// as many are held, and more only to finish the last index, since a reader
// continues after the last index it got and must have all of it.
func (t *eventTail) after(after uint64, max int) ([]EventRecord, <-chan struct{}, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if after < t.floor {
		return nil, nil, ErrEventsGone
	}
	var out []EventRecord
	start := (t.next - t.n + len(t.buf)) % len(t.buf)
	for i := 0; i < t.n; i++ {
		r := t.buf[(start+i)%len(t.buf)]
		if r.Index <= after {
			continue
		}
		if len(out) >= max && r.Index != out[len(out)-1].Index {
			break
		}
		out = append(out, r)
	}
	return out, t.changed, nil
}

// recordOf describes an applied event without its secrets.
func recordOf(a fsm.AppliedEvent) EventRecord {
	r := EventRecord{Index: a.Index, Type: a.Envelope.Type().String(), Time: a.Envelope.Time}
	if a.Result != nil {
		r.Count = a.Result.Count
		r.Error = fsm.ErrorName(a.Result.Err)
		r.Duplicate = a.Result.Duplicate
	}
	switch ev := a.Envelope.Event.(type) {
	case *events.SessionCreated:
		r.SessionID, r.UserID, r.App, r.Method = string(ev.SessionID), string(ev.UserID), ev.App, ev.AuthMethod.String()
	case *events.SessionRefreshed:
		r.SessionID = string(ev.SessionID)
	case *events.SessionRevoked:
		r.SessionID, r.Reason = string(ev.SessionID), ev.Reason.String()
		switch ev.Scope {
		case events.RevokeWholeSession:
			r.Scope = "session"
		case events.RevokeAccessToken:
			r.Scope = "access_token"
		case events.RevokeRefreshToken:
			r.Scope = "refresh_token"
		}
	case *events.UserForceLoggedOut:
		r.UserID, r.Reason = string(ev.UserID), ev.Reason.String()
	case *events.SessionsBulkRevoked:
		r.Reason = ev.Reason.String()
	case *events.UserCredentialsSet:
		r.UserID = string(ev.UserID)
		if ev.MustExist {
			// A password change or reset (not a user's first password).
			r.Reason = ev.Reason.String()
		}
	case *events.UserDeleted:
		r.UserID = string(ev.UserID)
	case *events.LoginFailed:
		r.UserID = string(ev.UserID)
	case *events.UserUnlocked:
		r.UserID = string(ev.UserID)
	case *events.UserLimitSet:
		r.UserID = string(ev.UserID)
	case *events.UserHomed:
		r.UserID = string(ev.UserID)
	case *events.EmailClaimed:
		// The address stays out of the stream: emails are personal data.
		r.UserID = string(ev.UserID)
	}
	if r.SessionID != "" && r.UserID == "" && a.Result != nil && a.Result.Session != nil {
		r.UserID = string(a.Result.Session.UserID)
	}
	return r
}

// Events returns about max applied events with index > after, oldest
// first (more only to finish the last index), and a channel closed when
// more arrive. ErrEventsGone means some of those
// events are no longer held.
func (g *raftGroup) Events(after uint64, max int) ([]EventRecord, <-chan struct{}, error) {
	return g.events.after(after, max)
}

// OldestEvent is the index after which this node holds every applied event.
func (g *raftGroup) OldestEvent() uint64 {
	g.events.mu.Lock()
	defer g.events.mu.Unlock()
	return g.events.floor
}

// NewestEvent is the index of the last applied event this node holds (or
// OldestEvent when it holds none).
func (g *raftGroup) NewestEvent() uint64 {
	g.events.mu.Lock()
	defer g.events.mu.Unlock()
	return g.events.last
}

// EventTail is one group's tail of applied events.
type EventTail interface {
	Events(after uint64, max int) ([]EventRecord, <-chan struct{}, error)
	OldestEvent() uint64
	NewestEvent() uint64
}

// EventsOf is the event tail of a hosted group ("": this node's own);
// ErrUnknownGroup for a group the cluster does not have.
func (n *Node) EventsOf(group string) (EventTail, error) {
	g, err := n.groupNamed(group)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// WaitEvents is Events that waits, until ctx ends, for at least one event.
func (g *raftGroup) WaitEvents(ctx context.Context, after uint64, max int) ([]EventRecord, error) {
	for {
		recs, changed, err := g.events.after(after, max)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.node.stop:
			return nil, ErrUnavailable
		}
	}
}
