package clustertest

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// The ledger of the bounded-staleness check: what each session and token
// went through, with the real times of each step (staleness_test.go).

// stSession is a session whose creation was acknowledged. Times are the
// test's own (monotonic) clock; a zero time means "never".
type stSession struct {
	sid, user string
	createAck time.Time
	// revokeInvoked and revokeAck: the earliest admin revocation sent, and
	// the earliest one acknowledged.
	revokeInvoked, revokeAck time.Time
}

// stToken is an access token a client learned: from a create, or from a
// refresh that rotated the previous one.
type stToken struct {
	access  string
	s       *stSession
	mintAck time.Time
	// rotateInvoked and rotateAck: the refresh that ends this token, sent
	// and acknowledged.
	rotateInvoked, rotateAck time.Time
}

// stLogout is a force logout of a user; ack is zero unless it answered 200.
type stLogout struct {
	invoked, ack time.Time
}

// stLedger is what the clients know: every session and token, and every
// revoking operation with its times. Clients pick the tokens they validate
// from it.
type stLedger struct {
	mu      sync.Mutex
	tokens  []*stToken
	logouts map[string][]stLogout
	// minted and revoked are rings of recently minted and recently revoked
	// tokens, which validations favour.
	minted, revoked stRing
	writes          map[string]map[int]int // kind → status → count
}

type stRing struct {
	buf  []*stToken
	next int
}

func (r *stRing) add(tok *stToken) {
	const size = 4096
	if len(r.buf) < size {
		r.buf = append(r.buf, tok)
		return
	}
	r.buf[r.next] = tok
	r.next = (r.next + 1) % size
}

func (r *stRing) pick(rng *rand.Rand) *stToken {
	if len(r.buf) == 0 {
		return nil
	}
	return r.buf[rng.IntN(len(r.buf))]
}

func newLedger() *stLedger {
	return &stLedger{logouts: map[string][]stLogout{}, writes: map[string]map[int]int{}}
}

func earliest(at *time.Time, t time.Time) {
	if !t.IsZero() && (at.IsZero() || t.Before(*at)) {
		*at = t
	}
}

func (l *stLedger) count(kind string, status int) {
	if l.writes[kind] == nil {
		l.writes[kind] = map[int]int{}
	}
	l.writes[kind][status]++
}

func (l *stLedger) created(user, sid, access string, acked time.Time) *stToken {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count("create", http.StatusCreated)
	tok := &stToken{access: access, s: &stSession{sid: sid, user: user, createAck: acked}, mintAck: acked}
	l.tokens = append(l.tokens, tok)
	l.minted.add(tok)
	return tok
}

// revokedSession records an admin revocation of tok's session; tok is the
// session's current access token.
func (l *stLedger) revokedSession(tok *stToken, invoked, acked time.Time, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count("revoke", status)
	earliest(&tok.s.revokeInvoked, invoked)
	if status == http.StatusNoContent {
		earliest(&tok.s.revokeAck, acked)
		l.revoked.add(tok)
	}
}

// refreshed records a refresh that rotates tok; next is the new access
// token when it answered 200.
func (l *stLedger) refreshed(tok *stToken, invoked, acked time.Time, status int, next string) *stToken {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count("refresh", status)
	earliest(&tok.rotateInvoked, invoked)
	if status != http.StatusOK {
		return nil
	}
	earliest(&tok.rotateAck, acked)
	l.revoked.add(tok)
	nt := &stToken{access: next, s: tok.s, mintAck: acked}
	l.tokens = append(l.tokens, nt)
	l.minted.add(nt)
	return nt
}

// loggedOut records a force logout of user; current are the user's
// current tokens whose sessions it surely ended if it succeeded.
func (l *stLedger) loggedOut(user string, invoked, acked time.Time, status int, current []*stToken) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count("logout", status)
	lo := stLogout{invoked: invoked}
	if status == http.StatusOK {
		lo.ack = acked
		for _, tok := range current {
			l.revoked.add(tok)
		}
	}
	l.logouts[user] = append(l.logouts[user], lo)
}

func (l *stLedger) failed(kind string, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(kind, status)
}

// pick chooses a token to validate: often one revoked lately, where a
// stale node answers 200 wrongly, or a live one minted lately, where a
// node that has not received it answers 401 wrongly; else any.
func (l *stLedger) pick(rng *rand.Rand) *stToken {
	l.mu.Lock()
	defer l.mu.Unlock()
	var tok *stToken
	switch r := rng.IntN(10); {
	case r < 4:
		tok = l.revoked.pick(rng)
	case r < 8:
		for range 8 {
			if tok = l.minted.pick(rng); tok == nil || l.revokeInvokedAt(tok).IsZero() {
				break
			}
		}
	}
	if tok == nil && len(l.tokens) > 0 {
		tok = l.tokens[rng.IntN(len(l.tokens))]
	}
	return tok
}

// revokedAt is when tok was surely revoked: the earliest acknowledgement of
// a refresh that rotated it, of an admin revocation of its session, or of a
// force logout of its user sent after the session's creation was
// acknowledged. Zero when none was.
func (l *stLedger) revokedAt(tok *stToken) (at time.Time, by string) {
	if !tok.rotateAck.IsZero() {
		at, by = tok.rotateAck, "refresh"
	}
	if a := tok.s.revokeAck; !a.IsZero() && (at.IsZero() || a.Before(at)) {
		at, by = a, "admin revocation"
	}
	for _, lo := range l.logouts[tok.s.user] {
		if !lo.ack.IsZero() && tok.s.createAck.Before(lo.invoked) && (at.IsZero() || lo.ack.Before(at)) {
			at, by = lo.ack, "force logout"
		}
	}
	return at, by
}

// revokeInvokedAt is the earliest time an operation that may end tok was
// sent, whatever its outcome; zero when none was.
func (l *stLedger) revokeInvokedAt(tok *stToken) time.Time {
	at := tok.rotateInvoked
	earliest(&at, tok.s.revokeInvoked)
	for _, lo := range l.logouts[tok.s.user] {
		earliest(&at, lo.invoked)
	}
	return at
}
