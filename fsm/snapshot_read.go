package fsm

import (
	"bufio"
	"io"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/sessiond/sessiond/events"
)

// readSnapshot reads a snapshot of any format this build knows: the header's
// format number picks the reader of the rest, and every reader builds the
// state the current version holds for the same history, so that a node
// restarts on data an older version wrote. Formats are never reused; a new
// one adds a reader here and keeps the old.
func readSnapshot(r io.Reader) (*state, uint64, error) {
	d := &snapshotDecoder{dec: msgpack.NewDecoder(bufio.NewReaderSize(r, 256<<10))}
	fields, err := d.dec.DecodeArrayLen()
	if err != nil {
		d.fail("header: %v", err)
	}
	if magic := d.str(); d.err == nil && magic != snapshotMagic {
		d.fail("not a sessiond snapshot (magic %q)", magic)
	}
	format := d.uint64()
	if d.err != nil {
		return nil, 0, d.err
	}
	var st *state
	var index uint64
	switch format {
	case 1:
		st, index = readFormat1(d, fields)
	case 2:
		st, index = readFormat2(d, fields)
	case 3:
		st, index = readFormat3(d, fields)
	default:
		d.fail("format %d, this build reads formats 1 to %d", format, snapshotFormat)
	}
	if trailer := d.str(); d.err == nil && trailer != snapshotTrailer {
		d.fail("missing trailer")
	}
	if d.err != nil {
		return nil, 0, d.err
	}
	return st, index, nil
}

// readFormat3 reads the rest of a format 3 snapshot, the current one:
// format 2 with the directory's counts at the end of the header and its
// records at the end of the body. (Persist writes it only for a state whose
// directory is not empty, and format 2 for the others.)
func readFormat3(d *snapshotDecoder, fields int) (*state, uint64) {
	if fields != format3HeaderFields {
		d.fail("header: want %d fields, got %d", format3HeaderFields, fields)
	}
	h := d.format2Header()
	nHomes := d.count("home", 1<<40)
	nClaims := d.count("email claim", 1<<40)
	importRegion := d.str()
	importDone := d.boolean()
	nMoved := d.count("moved user", 1<<40)
	nImported := d.count("imported user", 1<<40)
	if d.err == nil && ((importRegion != "" && !events.ValidRegion(importRegion)) || (importDone && importRegion == "")) {
		d.fail("header: import region %q, done %v", importRegion, importDone)
	}
	if d.err != nil {
		return nil, 0
	}
	st := d.format2Body(h)
	if d.err != nil {
		return nil, 0
	}
	d.homes(st, nHomes)
	d.claims(st, nClaims)
	st.dir.importRegion, st.dir.importDone = importRegion, importDone
	d.moved(st, nMoved)
	d.imported(st, nImported)
	return st, h.index
}

// readFormat2 reads the rest of a format 2 snapshot, which the current
// version writes for a state without a directory.
func readFormat2(d *snapshotDecoder, fields int) (*state, uint64) {
	if fields != headerFields {
		d.fail("header: want %d fields, got %d", headerFields, fields)
	}
	h := d.format2Header()
	if d.err != nil {
		return nil, 0
	}
	return d.format2Body(h), h.index
}

// format2Header is what a format 2 header holds after its format number;
// format 3's starts alike.
type format2Header struct {
	index                                uint64
	lastTime                             int64
	nSessions, nDedup, nUsers, nLockouts int
	pruneAt                              int64
}

func (d *snapshotDecoder) format2Header() format2Header {
	return format2Header{
		index:     d.uint64(),
		lastTime:  d.int64(),
		nSessions: d.count("session", 1<<40),
		nDedup:    d.count("request id", dedupCapacity),
		nUsers:    d.count("user", 1<<40),
		nLockouts: d.count("lockout", 1<<40),
		pruneAt:   d.int64(),
	}
}

// format2Body reads the records of format 2, which format 3 starts with.
func (d *snapshotDecoder) format2Body(h format2Header) *state {
	policy := d.policy()
	sessions := d.sessions(h.nSessions, decodeSession)
	if d.err != nil {
		return nil
	}
	st := newState(len(sessions))
	st.lastTime = h.lastTime
	st.policy = policy
	st.lockoutsPruneAt = h.pruneAt
	for _, s := range sessions {
		st.insert(s)
	}
	d.users(st, h.nUsers)
	d.lockouts(st, h.nLockouts)
	d.dedup(st, h.nDedup)
	return st
}

// moved reads n records of users frozen for a move: user ids in strictly
// increasing order, each with a valid region and a move.
func (d *snapshotDecoder) moved(st *state, n int) {
	var prev events.UserID
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(movedRecordFields, "moved user record")
		user, to, move := events.UserID(d.str()), d.str(), d.str()
		switch {
		case d.err != nil:
		case user == "" || (i > 0 && user <= prev):
			d.fail("moved user ids out of order at %q", user)
		case !events.ValidRegion(to) || move == "":
			d.fail("moved user %q: region %q, move %q", user, to, move)
		default:
			prev = user
			st.moved[user] = movedUser{to: to, move: move}
		}
	}
}

// imported reads n records of the moves users came in with: user ids in
// strictly increasing order, each with a move.
func (d *snapshotDecoder) imported(st *state, n int) {
	var prev events.UserID
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(importedRecordFields, "imported user record")
		user, move := events.UserID(d.str()), d.str()
		switch {
		case d.err != nil:
		case user == "" || (i > 0 && user <= prev):
			d.fail("imported user ids out of order at %q", user)
		case move == "":
			d.fail("imported user %q without a move", user)
		default:
			prev = user
			st.imported[user] = move
		}
	}
}

// homes reads n home records: user ids in strictly increasing order, each
// with a valid region.
func (d *snapshotDecoder) homes(st *state, n int) {
	var prev events.UserID
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(homeRecordFields, "home record")
		user, region := events.UserID(d.str()), d.str()
		switch {
		case d.err != nil:
		case user == "" || (i > 0 && user <= prev):
			d.fail("home user ids out of order at %q", user)
		case !events.ValidRegion(region):
			d.fail("home of %q: invalid region %q", user, region)
		default:
			prev = user
			st.dir.setHome(user, region)
		}
	}
}

// claims reads n email claim records: valid emails in strictly increasing
// order, each held by a user that holds no other.
func (d *snapshotDecoder) claims(st *state, n int) {
	var prev string
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(claimRecordFields, "email claim record")
		email, user := d.str(), events.UserID(d.str())
		_, holds := st.dir.emails[user]
		switch {
		case d.err != nil:
		case email == "" || (i > 0 && email <= prev):
			d.fail("claimed emails out of order at %q", email)
		case !validEmail(email):
			d.fail("claimed email %q is not lower-cased", email)
		case user == "":
			d.fail("email %q claimed by no user", email)
		case holds:
			d.fail("user %q holds two emails", user)
		default:
			prev = email
			st.dir.claim(user, email)
		}
	}
}

// sessions reads n session records with decode. Records are read into a
// list that grows with what is actually read (never from the header's
// claim), so that the state's maps are sized exactly.
func (d *snapshotDecoder) sessions(n int, decode func(*snapshotDecoder) *Session) []*Session {
	var sessions []*Session
	var prevID events.SessionID
	for i := 0; i < n && d.err == nil; i++ {
		s := decode(d)
		if d.err != nil {
			break
		}
		if i > 0 && s.ID() <= prevID {
			d.fail("session ids out of order at %q", s.ID())
			break
		}
		prevID = s.ID()
		sessions = append(sessions, s)
	}
	return sessions
}

func (d *snapshotDecoder) users(st *state, n int) {
	var prevUser events.UserID
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(userRecordFields, "user record")
		u := &User{ID: events.UserID(d.str()), Email: d.str(), PasswordHash: d.str(), CredentialVersion: d.uint64(),
			MaxSessions: int(d.int64()), HasLimit: d.boolean(), CreatedAt: d.int64(), UpdatedAt: d.int64()}
		switch {
		case d.err != nil:
		case u.ID == "" || (i > 0 && u.ID <= prevUser):
			d.fail("user ids out of order at %q", u.ID)
		case u.Email != "" && st.emails[u.Email] != "":
			d.fail("email held by two users")
		default:
			prevUser = u.ID
			st.users[u.ID] = u
			if u.Email != "" {
				st.emails[u.Email] = u.ID
			}
		}
	}
}

func (d *snapshotDecoder) lockouts(st *state, n int) {
	var prevKey string
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(lockoutRecordFields, "lockout record")
		key, l := d.str(), &lockout{lockedUntil: d.int64()}
		if d.err == nil {
			n, err := d.dec.DecodeArrayLen()
			if err != nil || n < 0 || n > 1000 {
				d.fail("lockout failures: %d (%v)", n, err)
			}
			for j := 0; j < n && d.err == nil; j++ {
				l.failures = append(l.failures, d.int64())
			}
		}
		if d.err == nil && i > 0 && key <= prevKey {
			d.fail("lockout keys out of order at %q", key)
		}
		prevKey = key
		st.lockouts[key] = l
	}
}

func (d *snapshotDecoder) dedup(st *state, n int) {
	for i := 0; i < n && d.err == nil; i++ {
		d.arrayLen(dedupRecordFields, "request id record")
		e := dedupEntry{RequestID: d.str(), Index: d.uint64(), Code: errCode(d.uint64()), Count: uint32(d.uint64())}
		st.dedup.remember(e)
	}
}

// decodeSession reads a format 2 session record: the fields format 1 had,
// then the idle timeout, the current pair's origin and the sibling pairs.
func decodeSession(d *snapshotDecoder) *Session {
	d.arrayLen(sessionRecordFields, "session record")
	s, e := decodeSessionFormat1Fields(d)
	if d.err != nil {
		return nil
	}
	idle := d.uint64()
	if idle > 1<<32-1 {
		d.fail("idle timeout %d out of range", idle)
	}
	s.idleSeconds = uint32(idle)
	e.parent = d.hash()
	e.rotatedAt = d.int64()
	if d.err != nil {
		return nil
	}
	nPairs, err := d.dec.DecodeArrayLen()
	if err != nil || nPairs < 0 || nPairs > maxLivePairs-1 {
		d.fail("token pairs: %d (%v)", nPairs, err)
		return nil
	}
	for i := 0; i < nPairs && d.err == nil; i++ {
		d.arrayLen(pairRecordFields, "token pair")
		e.pairs = append(e.pairs, tokenPair{access: d.hash(), refresh: d.hash(), accessExpiresAt: d.int64(),
			issuedAt: d.int64(), accessRevoked: d.boolean(), parent: d.hash(), rotatedAt: d.int64()})
	}
	attachExtra(s, e)
	return s
}

// attachExtra gives s its extra fields, unless they are all empty.
func attachExtra(s *Session, e *sessionExtra) {
	if e.label != "" || e.revokedAt != 0 || e.revokeReason != 0 || e.scopes != nil || e.attributes != nil ||
		e.prevRefresh != nil || !e.parent.IsZero() || e.rotatedAt != 0 || e.pairs != nil {
		s.extra = e
	}
}

// decodeSessionFormat1Fields reads the fields a session record has had since
// format 1, in their order; later formats append theirs after them.
func decodeSessionFormat1Fields(d *snapshotDecoder) (*Session, *sessionExtra) {
	s := &Session{}
	e := &sessionExtra{}
	// The text is assembled as packText lays it out, straight from the
	// snapshot's bytes.
	t := append(d.text[:0], 0, 0, 0, 0)
	t = d.appendStr(t, maxPackedID)
	idLen := len(t) - textHeader
	s.UserID = events.UserID(d.str())
	t = d.appendStr(t, maxPackedApp)
	appLen := len(t) - textHeader - idLen
	t = d.appendStr(t, maxPackedAgent)
	agentLen := len(t) - textHeader - idLen - appLen
	t = d.appendStr(t, maxPackedIP)
	t[0], t[1], t[2], t[3] = byte(idLen), byte(appLen), byte(agentLen), byte(agentLen>>8)
	s.text = string(t)
	d.text = t
	e.label = d.str()
	s.AccessHash = d.hash()
	s.RefreshHash = d.hash()
	s.CreatedAt = d.int64()
	s.LastSeenAt = d.int64()
	s.TokensIssuedAt = d.int64()
	s.AccessExpiresAt = d.int64()
	s.RefreshExpiresAt = d.int64()
	s.ExpiresAt = d.int64()
	s.AuthMethod = events.AuthMethod(d.uint64())
	s.flags = sessionFlags(d.uint64())
	s.RememberMe = d.boolean()
	e.revokedAt = d.int64()
	e.revokeReason = events.Reason(d.uint64())
	if d.err != nil {
		return s, e
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil || n < 0 || n > 1<<16 {
		d.fail("scopes: %v", err)
		return s, e
	}
	if n > 0 {
		e.scopes = make([]string, n)
		for i := range e.scopes {
			e.scopes[i] = d.str()
		}
	}
	total, err := d.dec.DecodeArrayLen()
	if err != nil || total < 2 {
		d.fail("attributes: %v", err)
		return s, e
	}
	nAttrs, nHistory := d.count("attribute", 1<<16), d.count("refresh history", maxRefreshHistory)
	if d.err == nil && total != 2+2*nAttrs+nHistory {
		d.fail("attribute list length %d does not match its counts", total)
	}
	if d.err != nil {
		return s, e
	}
	if nAttrs > 0 {
		e.attributes = make([]events.Attribute, nAttrs)
		for i := range e.attributes {
			e.attributes[i] = events.Attribute{Key: d.str(), Value: d.str()}
		}
	}
	if nHistory > 0 {
		e.prevRefresh = make([]events.TokenHash, nHistory)
		for i := range e.prevRefresh {
			e.prevRefresh[i] = d.hash()
		}
	}
	return s, e
}

// Format 1, written up to the commit that introduced format 2 (users,
// lockouts, idle timeouts and sibling token pairs):
//
//	header   [magic, 1, applied index, last event time, #sessions, #dedup]
//	policy   the policy record of format 2; the very first builds wrote the
//	         Policy struct as a msgpack map instead
//	sessions #sessions session records of 21 fields, the first 21 of format 2
//	dedup    #dedup request-id records, as in format 2
//	trailer  the string "end"
const (
	format1HeaderFields  = 6
	format1SessionFields = 21
)

// readFormat1 reads the rest of a format 1 snapshot. Format 1 had no users,
// lockouts, idle timeouts or sibling pairs, so those are empty as they would
// be in the current version after the same history.
func readFormat1(d *snapshotDecoder, fields int) (*state, uint64) {
	if fields != format1HeaderFields {
		d.fail("header: want %d fields, got %d", format1HeaderFields, fields)
	}
	index := d.uint64()
	lastTime := d.int64()
	nSessions := d.count("session", 1<<40)
	nDedup := d.count("request id", dedupCapacity)
	if d.err != nil {
		return nil, 0
	}
	policy := d.policyFormat1()
	sessions := d.sessions(nSessions, decodeSessionFormat1)
	if d.err != nil {
		return nil, 0
	}
	st := newState(len(sessions))
	st.lastTime = lastTime
	st.policy = policy
	for _, s := range sessions {
		st.insert(s)
	}
	d.dedup(st, nDedup)
	return st, index
}

// policyFormat1 reads format 1's policy: the record of format 2, or the map
// the first builds wrote.
func (d *snapshotDecoder) policyFormat1() Policy {
	if d.err != nil {
		return Policy{}
	}
	code, err := d.dec.PeekCode()
	if err != nil {
		d.fail("policy: %v", err)
		return Policy{}
	}
	if !msgpcode.IsFixedMap(code) && code != msgpcode.Map16 && code != msgpcode.Map32 {
		return d.policy()
	}
	var p Policy
	if err := d.dec.Decode(&p); err != nil {
		d.fail("policy: %v", err)
	}
	if len(p.AppMaxSessions) > maxAppLimits {
		d.fail("policy app limits: %d", len(p.AppMaxSessions))
	}
	return p
}

// decodeSessionFormat1 reads a format 1 session record and fills in what
// format 2 added as the current version would have it: no idle timeout (a
// format 1 policy could not set one), no sibling pairs (format 1 had no
// refresh grace), and the current pair's origin — the refresh token it
// replaced, which is the newest in the refresh history, and its minting time
// — for a session refreshed at least once.
func decodeSessionFormat1(d *snapshotDecoder) *Session {
	d.arrayLen(format1SessionFields, "session record")
	s, e := decodeSessionFormat1Fields(d)
	if d.err != nil {
		return nil
	}
	if n := len(e.prevRefresh); n > 0 {
		e.parent = e.prevRefresh[n-1]
		e.rotatedAt = s.TokensIssuedAt
	}
	attachExtra(s, e)
	return s
}
