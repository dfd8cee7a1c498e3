package fsm

import (
	"strings"

	"github.com/sessiond/sessiond/events"
)

// Status of a session or of one of its tokens at a given time.
type Status uint8

const (
	StatusUnknown Status = iota
	StatusActive
	StatusExpired
	StatusRevoked
)

// String is the API spelling of the status.
func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusExpired:
		return "expired"
	case StatusRevoked:
		return "revoked"
	}
	return "unknown"
}

// maxRefreshHistory bounds how many previous refresh-token hashes a session
// remembers for reuse detection. A token older than that is simply unknown.
const maxRefreshHistory = 16

// Session is one session as the state machine holds it. Times are Unix
// nanoseconds. Reads hand out copies; the slices behind Scopes, Attributes
// and the refresh history are shared and must not be modified.
//
// The layout is kept small on purpose (a node holds millions): rarely set
// fields live in a separate, usually absent, sessionExtra.
type Session struct {
	// What validating an access token reads comes first, in one cache line.
	AccessHash      events.TokenHash
	AccessExpiresAt int64
	// ExpiresAt is the absolute end: nothing moves past it.
	ExpiresAt  int64
	flags      sessionFlags
	AuthMethod events.AuthMethod
	RememberMe bool
	// idleSeconds is the idle timeout fixed at creation (0: none). It sits
	// in what would otherwise be padding.
	idleSeconds uint32
	extra       *sessionExtra

	// text packs the session id, app, user agent and IP into one string
	// (see packText): one allocation and one string header instead of four.
	text   string
	UserID events.UserID

	RefreshHash events.TokenHash

	CreatedAt  int64
	LastSeenAt int64
	// TokensIssuedAt is when the current token pair was minted (creation or
	// the last refresh).
	TokensIssuedAt   int64
	RefreshExpiresAt int64
}

// Limits of the fields packed into Session.text. The API allows far less
// (docs/api.md#input-limits: ids and apps ≤ 128, device fields ≤ 512 bytes); an
// event past them is refused as invalid, the same way on every node.
const (
	maxPackedID    = 1<<8 - 1
	maxPackedApp   = 1<<8 - 1
	maxPackedAgent = 1<<16 - 1
	maxPackedIP    = 1<<16 - 1
)

// textHeader is the length prefix of Session.text: the id's length, the
// app's, and the user agent's as two little-endian bytes. The IP is the rest
// (bounded all the same, so that every stored session fits a snapshot).
const textHeader = 4

// packText builds Session.text. ok is false when a field is too long.
func packText(id events.SessionID, app, userAgent, ip string) (text string, ok bool) {
	if len(id) > maxPackedID || len(app) > maxPackedApp || len(userAgent) > maxPackedAgent || len(ip) > maxPackedIP {
		return "", false
	}
	// A Builder hands over its buffer without copying: one allocation.
	var b strings.Builder
	b.Grow(textHeader + len(id) + len(app) + len(userAgent) + len(ip))
	b.Write([]byte{byte(len(id)), byte(len(app)), byte(len(userAgent)), byte(len(userAgent) >> 8)})
	b.WriteString(string(id))
	b.WriteString(app)
	b.WriteString(userAgent)
	b.WriteString(ip)
	return b.String(), true
}

// ID is the session's id.
func (s *Session) ID() events.SessionID {
	if s.text == "" {
		return ""
	}
	return events.SessionID(s.text[textHeader : textHeader+int(s.text[0])])
}

// App is the client application the session belongs to.
func (s *Session) App() string {
	if s.text == "" {
		return ""
	}
	start := textHeader + int(s.text[0])
	return s.text[start : start+int(s.text[1])]
}

// UserAgent is the device's user agent given at creation.
func (s *Session) UserAgent() string {
	if s.text == "" {
		return ""
	}
	start := textHeader + int(s.text[0]) + int(s.text[1])
	return s.text[start : start+s.agentLen()]
}

// IP is the device's address given at creation.
func (s *Session) IP() string {
	if s.text == "" {
		return ""
	}
	return s.text[textHeader+int(s.text[0])+int(s.text[1])+s.agentLen():]
}

func (s *Session) agentLen() int { return int(s.text[2]) | int(s.text[3])<<8 }

type sessionFlags uint8

const (
	flagRevoked sessionFlags = 1 << iota
	flagAccessRevoked
	flagRefreshRevoked
)

// sessionExtra holds what most sessions lack. Like Session it is never
// modified once attached; a change attaches a new copy.
type sessionExtra struct {
	label        string
	scopes       []string
	attributes   []events.Attribute
	prevRefresh  []events.TokenHash
	revokedAt    int64
	revokeReason events.Reason
	// parent is the refresh token the current pair was minted from, and
	// rotatedAt when that token was first rotated: a reuse of parent within
	// the policy's refresh_reuse_grace mints a sibling pair instead of
	// counting as theft.
	parent    events.TokenHash
	rotatedAt int64
	// pairs are further live token pairs minted within the grace (at most
	// maxLivePairs-1; the newest pair is always the session's own fields).
	pairs []tokenPair
}

// tokenPair is a live access/refresh pair other than the newest.
type tokenPair struct {
	access          events.TokenHash
	refresh         events.TokenHash
	accessExpiresAt int64
	issuedAt        int64
	accessRevoked   bool
	parent          events.TokenHash
	rotatedAt       int64
}

// maxLivePairs bounds the token pairs a session holds at once
// (docs/logins.md#refresh-grace).
const maxLivePairs = 4

func (s *Session) ex() *sessionExtra {
	if s.extra == nil {
		return &emptyExtra
	}
	return s.extra
}

var emptyExtra sessionExtra

// Label is the device label given at creation.
func (s *Session) Label() string { return s.ex().label }

// Scopes are the session's scopes (read-only).
func (s *Session) Scopes() []string { return s.ex().scopes }

// Attributes are the session's attributes sorted by key (read-only).
func (s *Session) Attributes() []events.Attribute { return s.ex().attributes }

// Revoked reports whether the whole session was revoked.
func (s *Session) Revoked() bool { return s.flags&flagRevoked != 0 }

// AccessRevoked reports whether the current access token alone was revoked.
func (s *Session) AccessRevoked() bool { return s.flags&flagAccessRevoked != 0 }

// RefreshRevoked reports whether the refresh token alone was revoked.
func (s *Session) RefreshRevoked() bool { return s.flags&flagRefreshRevoked != 0 }

// tombstone reports whether revocations left s no token that could ever be
// valid again: the whole session was revoked, or its refresh tokens and
// every live access token were revoked one by one. Time plays no part (a
// session whose tokens merely expired is no tombstone), and nothing makes
// a tombstone usable again; it stays stored until garbage collection
// removes it at its end.
func (s *Session) tombstone() bool {
	if s.Revoked() {
		return true
	}
	if !s.AccessRevoked() || !s.RefreshRevoked() {
		return false
	}
	for _, p := range s.ex().pairs {
		if !p.accessRevoked {
			return false
		}
	}
	return true
}

// RevokedAt is when the session was revoked (0 if it was not).
func (s *Session) RevokedAt() int64 { return s.ex().revokedAt }

// RevokeReason is why the session was revoked.
func (s *Session) RevokeReason() events.Reason { return s.ex().revokeReason }

// IdleTimeout is the idle timeout the session was created under (0: none).
func (s *Session) IdleTimeout() int64 { return int64(s.idleSeconds) * 1e9 }

// IdleDeadline is when the session ends for want of use, given lastUse (a
// use this node saw that may not be replicated yet; 0 if none). It is
// MaxInt64 without an idle timeout.
func (s *Session) IdleDeadline(lastUse int64) int64 {
	if s.idleSeconds == 0 {
		return 1<<63 - 1
	}
	return max(s.LastSeenAt, lastUse) + s.IdleTimeout()
}

// EndsAt is when no token of the session can be valid any more, revocation
// and idleness aside: the latest token expiry, capped by the absolute
// expiry. Tombstones of revoked sessions are kept until then.
func (s *Session) EndsAt() int64 {
	end := max(s.AccessExpiresAt, s.RefreshExpiresAt)
	for _, p := range s.ex().pairs {
		end = max(end, p.accessExpiresAt)
	}
	return min(end, s.ExpiresAt)
}

// Status is the session's status at now: active while any token is
// usable; otherwise revoked when a revocation is what took the last usable
// token away (or the whole session was revoked), else expired.
func (s *Session) Status(now int64) Status { return s.StatusAt(now, 0) }

// StatusAt is Status with a use this node saw that may not be replicated
// yet (0 if none), for the idle timeout.
func (s *Session) StatusAt(now, lastUse int64) Status {
	if now < s.ExpiresAt && now >= s.IdleDeadline(lastUse) && !s.Revoked() {
		return StatusExpired
	}
	return s.statusIgnoringIdle(now)
}

// revocable reports whether a revocation at now still takes something
// away. Idleness is ignored: a use on another node, not replicated yet, may
// have kept the session alive.
func (s *Session) revocable(now int64) bool { return s.statusIgnoringIdle(now) == StatusActive }

func (s *Session) statusIgnoringIdle(now int64) Status {
	if s.Revoked() {
		return StatusRevoked
	}
	if now >= s.ExpiresAt {
		return StatusExpired
	}
	accessLive, refreshLive := now < s.AccessExpiresAt, now < s.RefreshExpiresAt
	if (accessLive && !s.AccessRevoked()) || (refreshLive && !s.RefreshRevoked()) {
		return StatusActive
	}
	revokedLive := (accessLive && s.AccessRevoked()) || (refreshLive && s.RefreshRevoked())
	for _, p := range s.ex().pairs {
		if now < p.accessExpiresAt {
			if !p.accessRevoked {
				return StatusActive
			}
			revokedLive = true
		}
	}
	if revokedLive {
		return StatusRevoked
	}
	return StatusExpired
}

// AccessStatus is the status of the session's newest access token at now.
func (s *Session) AccessStatus(now int64) Status {
	return s.accessStatus(s.AccessExpiresAt, s.AccessRevoked(), now, 0)
}

func (s *Session) accessStatus(expiresAt int64, revoked bool, now, lastUse int64) Status {
	switch {
	case s.Revoked() || revoked:
		return StatusRevoked
	case now >= expiresAt || now >= s.ExpiresAt || now >= s.IdleDeadline(lastUse):
		return StatusExpired
	}
	return StatusActive
}

// AccessStatusOf is the status at now of the session's access token with
// hash h (the newest one, or one of a pair minted within the refresh grace),
// given a use this node saw that may not be replicated yet (0 if none).
func (s *Session) AccessStatusOf(h events.TokenHash, now, lastUse int64) Status {
	if h == s.AccessHash {
		return s.accessStatus(s.AccessExpiresAt, s.AccessRevoked(), now, lastUse)
	}
	for _, p := range s.ex().pairs {
		if p.access == h {
			return s.accessStatus(p.accessExpiresAt, p.accessRevoked, now, lastUse)
		}
	}
	return StatusUnknown
}

// holdsAccess reports whether h is one of the session's live access tokens.
func (s *Session) holdsAccess(h events.TokenHash) bool {
	if h == s.AccessHash {
		return true
	}
	for _, p := range s.ex().pairs {
		if p.access == h {
			return true
		}
	}
	return false
}

// holdsLiveRefresh reports whether h is one of the session's live refresh
// tokens (the newest pair's, or another live pair's).
func (s *Session) holdsLiveRefresh(h events.TokenHash) bool {
	if h == s.RefreshHash {
		return true
	}
	for _, p := range s.ex().pairs {
		if p.refresh == h {
			return true
		}
	}
	return false
}

// RefreshStatus is the status of the refresh token with hash h at now: a
// live one, or a previous (rotated, so no longer valid) one.
func (s *Session) RefreshStatus(h events.TokenHash, now int64) Status {
	return s.RefreshStatusAt(h, now, 0)
}

// RefreshStatusAt is RefreshStatus with a use this node saw that may not be
// replicated yet (0 if none).
func (s *Session) RefreshStatusAt(h events.TokenHash, now, lastUse int64) Status {
	if !s.holdsLiveRefresh(h) {
		if s.hasPreviousRefresh(h) {
			return StatusRevoked
		}
		return StatusUnknown
	}
	switch {
	case s.Revoked() || s.RefreshRevoked():
		return StatusRevoked
	case now >= s.RefreshExpiresAt || now >= s.ExpiresAt || now >= s.IdleDeadline(lastUse):
		return StatusExpired
	}
	return StatusActive
}

// ViewFor returns a copy of s showing the token pair that holds h (access
// or live refresh) as its own, so that an answer about that token reports
// that pair's expiry. For any other h it is a plain copy.
func (s *Session) ViewFor(h events.TokenHash) Session {
	c := *s
	for _, p := range s.ex().pairs {
		if p.access == h || p.refresh == h {
			c.AccessHash, c.RefreshHash = p.access, p.refresh
			c.AccessExpiresAt, c.TokensIssuedAt = p.accessExpiresAt, p.issuedAt
			c.flags &^= flagAccessRevoked
			if p.accessRevoked {
				c.flags |= flagAccessRevoked
			}
			break
		}
	}
	return c
}

// LivePairs is how many token pairs the session holds (1 without grace
// reuse).
func (s *Session) LivePairs() int { return 1 + len(s.ex().pairs) }

func (s *Session) hasPreviousRefresh(h events.TokenHash) bool {
	for _, p := range s.ex().prevRefresh {
		if p == h {
			return true
		}
	}
	return false
}

// withExtra returns a copy of s whose extra is a copy changed by edit.
func (s *Session) withExtra(edit func(*sessionExtra)) *Session {
	c := *s
	e := *s.ex()
	edit(&e)
	c.extra = &e
	return &c
}

// revoked returns a revoked copy of s.
func (s *Session) revoked(at int64, reason events.Reason) *Session {
	c := s.withExtra(func(e *sessionExtra) {
		e.revokedAt = at
		e.revokeReason = reason
	})
	c.flags |= flagRevoked
	return c
}
