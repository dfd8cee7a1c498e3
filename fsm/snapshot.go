package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
)

// Snapshot format. A snapshot is one msgpack stream:
//
//	header   [magic, format, applied index, last event time, #sessions, #dedup,
//	          #users, #lockouts, lockouts prune time]
//	         format 3 adds six fields: [..., #homes, #claims, import region,
//	         import done, #moved, #imported]
//	policy   the Policy struct
//	sessions #sessions session records, sorted by session id
//	users    #users user records, sorted by user id
//	lockouts #lockouts lockout records, sorted by login identifier
//	dedup    #dedup request-id records, oldest first
//	homes    format 3 only: #homes [user id, region] records, sorted by user id
//	claims   format 3 only: #claims [email, user id] records, sorted by email
//	moved    format 3 only: #moved [user id, region, move] records of the
//	         users frozen for a move, sorted by user id
//	imported format 3 only: #imported [user id, move] records of the moves
//	         taken in, sorted by user id
//	trailer  the string "end"
//
// Every sequence is sorted or ordered by the log, so equal states give equal
// bytes. A change to any record's layout bumps snapshotFormat. Restore reads
// every format ever released (snapshot_read.go keeps a reader for each, with
// a golden file in testdata/) and refuses formats it does not know.
//
// Persist writes the newest format, 3, only when the directory (the homes
// and claims, which only the global group holds) is not empty. Otherwise it
// writes format 2, byte for byte what the previous release wrote, so that a
// region group's snapshots, and every snapshot of a single-region cluster,
// stay readable by the previous release (a rolling upgrade, a rollback): it
// reads formats 1 and 2 only.
const (
	snapshotMagic   = "sessiond-fsm-snapshot"
	snapshotFormat  = 3
	snapshotTrailer = "end"

	// snapshotFormatNoDirectory is the format written for a state whose
	// directory is empty.
	snapshotFormatNoDirectory = 2

	sessionRecordFields = 25
	pairRecordFields    = 7
	userRecordFields    = 8
	lockoutRecordFields = 3
	headerFields        = 9 // format 2's header
	dedupRecordFields   = 4
	policyRecordFields  = 14

	format3HeaderFields  = headerFields + 6
	homeRecordFields     = 2
	claimRecordFields    = 2
	movedRecordFields    = 3
	importedRecordFields = 2
)

// ErrSnapshotFormat reports a snapshot this build cannot read.
var ErrSnapshotFormat = errors.New("fsm: unreadable snapshot")

// fsmSnapshot is a point-in-time view: the session pointers (immutable
// values), the policy and the request-id table, copied on the apply
// goroutine.
type fsmSnapshot struct {
	index    uint64
	lastTime int64
	policy   Policy
	sessions []*Session
	users    []*User
	lockouts []keyedLockout
	pruneAt  int64
	dedup    []dedupEntry
	homes    []homeRecord
	claims   []claimRecord
	// importRegion and importDone are the directory's import state.
	importRegion string
	importDone   bool
	moved        []movedRecord
	imported     []importedRecord
}

// movedRecord is a user frozen for a move.
type movedRecord struct {
	user events.UserID
	movedUser
}

// importedRecord is the last move a user came in with.
type importedRecord struct {
	user events.UserID
	move string
}

type keyedLockout struct {
	key string
	*lockout
}

// homeRecord is a user's home region in the directory.
type homeRecord struct {
	user   events.UserID
	region string
}

// claimRecord is an email address held in the directory.
type claimRecord struct {
	email string
	user  events.UserID
}

// format is the snapshot format s is written in.
func (s *fsmSnapshot) format() int {
	if len(s.homes) == 0 && len(s.claims) == 0 && s.importRegion == "" && !s.importDone &&
		len(s.moved) == 0 && len(s.imported) == 0 {
		return snapshotFormatNoDirectory
	}
	return snapshotFormat
}

func (st *state) capture(index uint64) *fsmSnapshot {
	snap := &fsmSnapshot{
		index:    index,
		lastTime: st.lastTime,
		policy:   st.policy,
		sessions: make([]*Session, 0, st.sessions.len()),
		dedup:    st.dedup.inOrder(),
		users:    make([]*User, 0, len(st.users)),
		lockouts: make([]keyedLockout, 0, len(st.lockouts)),
		pruneAt:  st.lockoutsPruneAt,
	}
	for _, u := range st.users {
		snap.users = append(snap.users, u)
	}
	for k, l := range st.lockouts {
		snap.lockouts = append(snap.lockouts, keyedLockout{key: k, lockout: l})
	}
	// The directory's maps change in place: their entries are copied.
	if !st.dir.empty() {
		snap.homes = make([]homeRecord, 0, len(st.dir.homes))
		for u, r := range st.dir.homes {
			snap.homes = append(snap.homes, homeRecord{user: u, region: r})
		}
		snap.claims = make([]claimRecord, 0, len(st.dir.owners))
		for e, u := range st.dir.owners {
			snap.claims = append(snap.claims, claimRecord{email: e, user: u})
		}
		snap.importRegion, snap.importDone = st.dir.importRegion, st.dir.importDone
	}
	for u, m := range st.moved {
		snap.moved = append(snap.moved, movedRecord{user: u, movedUser: m})
	}
	for u, m := range st.imported {
		snap.imported = append(snap.imported, importedRecord{user: u, move: m})
	}
	snap.policy.AppMaxSessions = slices.Clone(st.policy.AppMaxSessions)
	st.sessions.all(func(s *Session) { snap.sessions = append(snap.sessions, s) })
	return snap
}

// Persist sorts and streams the captured state into sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.encode(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release does nothing: the snapshot holds only shared immutable values.
func (s *fsmSnapshot) Release() {}

// sort puts the captured records in their snapshot order.
func (s *fsmSnapshot) sort() {
	slices.SortFunc(s.sessions, func(a, b *Session) int { return strings.Compare(string(a.ID()), string(b.ID())) })
	slices.SortFunc(s.users, func(a, b *User) int { return strings.Compare(string(a.ID), string(b.ID)) })
	slices.SortFunc(s.lockouts, func(a, b keyedLockout) int { return strings.Compare(a.key, b.key) })
	slices.SortFunc(s.homes, func(a, b homeRecord) int { return strings.Compare(string(a.user), string(b.user)) })
	slices.SortFunc(s.claims, func(a, b claimRecord) int { return strings.Compare(a.email, b.email) })
	slices.SortFunc(s.moved, func(a, b movedRecord) int { return strings.Compare(string(a.user), string(b.user)) })
	slices.SortFunc(s.imported, func(a, b importedRecord) int { return strings.Compare(string(a.user), string(b.user)) })
}

// encode writes the snapshot's bytes to w.
func (s *fsmSnapshot) encode(w io.Writer) error {
	s.sort()
	format := s.format()
	bw := bufio.NewWriterSize(w, 256<<10)
	e := &snapshotEncoder{enc: msgpack.NewEncoder(bw)}
	if format == snapshotFormatNoDirectory {
		e.arrayLen(headerFields)
	} else {
		e.arrayLen(format3HeaderFields)
	}
	e.str(snapshotMagic)
	e.uint(uint64(format))
	e.uint(s.index)
	e.int(s.lastTime)
	e.int(int64(len(s.sessions)))
	e.int(int64(len(s.dedup)))
	e.int(int64(len(s.users)))
	e.int(int64(len(s.lockouts)))
	e.int(s.pruneAt)
	if format != snapshotFormatNoDirectory {
		e.int(int64(len(s.homes)))
		e.int(int64(len(s.claims)))
		e.str(s.importRegion)
		e.boolean(s.importDone)
		e.int(int64(len(s.moved)))
		e.int(int64(len(s.imported)))
	}
	e.policy(s.policy)
	for _, sess := range s.sessions {
		if e.err != nil {
			break
		}
		e.session(sess)
	}
	for _, u := range s.users {
		e.user(u)
	}
	for _, l := range s.lockouts {
		e.lockout(l)
	}
	for _, d := range s.dedup {
		e.arrayLen(dedupRecordFields)
		e.str(d.RequestID)
		e.uint(d.Index)
		e.uint(uint64(d.Code))
		e.uint(uint64(d.Count))
	}
	for _, h := range s.homes {
		e.arrayLen(homeRecordFields)
		e.str(string(h.user))
		e.str(h.region)
	}
	for _, c := range s.claims {
		e.arrayLen(claimRecordFields)
		e.str(c.email)
		e.str(string(c.user))
	}
	for _, m := range s.moved {
		e.arrayLen(movedRecordFields)
		e.str(string(m.user))
		e.str(m.to)
		e.str(m.move)
	}
	for _, m := range s.imported {
		e.arrayLen(importedRecordFields)
		e.str(string(m.user))
		e.str(m.move)
	}
	e.str(snapshotTrailer)
	if e.err != nil {
		return fmt.Errorf("fsm: write snapshot: %w", e.err)
	}
	return bw.Flush()
}

// snapshotEncoder writes snapshot records, remembering the first error so
// that records read as straight-line code.
type snapshotEncoder struct {
	enc *msgpack.Encoder
	err error
}

func (e *snapshotEncoder) arrayLen(n int) {
	if e.err == nil {
		e.err = e.enc.EncodeArrayLen(n)
	}
}

func (e *snapshotEncoder) str(v string) {
	if e.err == nil {
		e.err = e.enc.EncodeString(v)
	}
}

func (e *snapshotEncoder) int(v int64) {
	if e.err == nil {
		e.err = e.enc.EncodeInt(v)
	}
}

func (e *snapshotEncoder) uint(v uint64) {
	if e.err == nil {
		e.err = e.enc.EncodeUint(v)
	}
}

func (e *snapshotEncoder) boolean(v bool) {
	if e.err == nil {
		e.err = e.enc.EncodeBool(v)
	}
}

func (e *snapshotEncoder) hash(h events.TokenHash) {
	if e.err == nil {
		e.err = e.enc.EncodeBytes(h[:])
	}
}

// session writes one session record. The attributes and the refresh history
// share one array, [#attrs, #history, k1, v1, ..., h1, ...], so the record
// keeps a fixed field count.
func (e *snapshotEncoder) session(s *Session) {
	x := s.ex()
	e.arrayLen(sessionRecordFields)
	e.str(string(s.ID()))
	e.str(string(s.UserID))
	e.str(s.App())
	e.str(s.UserAgent())
	e.str(s.IP())
	e.str(x.label)
	e.hash(s.AccessHash)
	e.hash(s.RefreshHash)
	e.int(s.CreatedAt)
	e.int(s.LastSeenAt)
	e.int(s.TokensIssuedAt)
	e.int(s.AccessExpiresAt)
	e.int(s.RefreshExpiresAt)
	e.int(s.ExpiresAt)
	e.uint(uint64(s.AuthMethod))
	e.uint(uint64(s.flags))
	e.boolean(s.RememberMe)
	e.int(x.revokedAt)
	e.uint(uint64(x.revokeReason))
	e.arrayLen(len(x.scopes))
	for _, v := range x.scopes {
		e.str(v)
	}
	e.arrayLen(2 + 2*len(x.attributes) + len(x.prevRefresh))
	e.int(int64(len(x.attributes)))
	e.int(int64(len(x.prevRefresh)))
	for _, a := range x.attributes {
		e.str(a.Key)
		e.str(a.Value)
	}
	for _, h := range x.prevRefresh {
		e.hash(h)
	}
	e.uint(uint64(s.idleSeconds))
	e.hash(x.parent)
	e.int(x.rotatedAt)
	e.arrayLen(len(x.pairs))
	for _, p := range x.pairs {
		e.arrayLen(pairRecordFields)
		e.hash(p.access)
		e.hash(p.refresh)
		e.int(p.accessExpiresAt)
		e.int(p.issuedAt)
		e.boolean(p.accessRevoked)
		e.hash(p.parent)
		e.int(p.rotatedAt)
	}
}

func (e *snapshotEncoder) user(u *User) {
	e.arrayLen(userRecordFields)
	e.str(string(u.ID))
	e.str(u.Email)
	e.str(u.PasswordHash)
	e.uint(u.CredentialVersion)
	e.int(int64(u.MaxSessions))
	e.boolean(u.HasLimit)
	e.int(u.CreatedAt)
	e.int(u.UpdatedAt)
}

func (e *snapshotEncoder) lockout(l keyedLockout) {
	e.arrayLen(lockoutRecordFields)
	e.str(l.key)
	e.int(l.lockedUntil)
	e.arrayLen(len(l.failures))
	for _, t := range l.failures {
		e.int(t)
	}
}

// snapshotDecoder reads a snapshot stream, remembering the first error so
// that record decoding reads straight through.
type snapshotDecoder struct {
	dec *msgpack.Decoder
	err error
	// text is reused to assemble each session's packed text, so that
	// restoring a session allocates that text once and nothing for its parts.
	text []byte
}

func (d *snapshotDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrSnapshotFormat}, args...)...)
	}
}

func (d *snapshotDecoder) arrayLen(want int, what string) {
	if d.err != nil {
		return
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil || n != want {
		d.fail("%s: want %d fields, got %d (%v)", what, want, n, err)
	}
}

func (d *snapshotDecoder) str() string {
	if d.err != nil {
		return ""
	}
	s, err := d.dec.DecodeString()
	if err != nil {
		d.fail("string: %v", err)
	}
	return s
}

// appendStr reads a string of at most limit bytes and appends it to buf.
func (d *snapshotDecoder) appendStr(buf []byte, limit int) []byte {
	if d.err != nil {
		return buf
	}
	n, err := d.dec.DecodeBytesLen()
	switch {
	case err != nil:
		d.fail("string: %v", err)
		return buf
	case n <= 0: // nil or empty
		return buf
	case n > limit:
		d.fail("string of %d bytes, at most %d allowed here", n, limit)
		return buf
	}
	buf = slices.Grow(buf, n)
	if err := d.dec.ReadFull(buf[len(buf) : len(buf)+n]); err != nil {
		d.fail("string: %v", err)
		return buf
	}
	return buf[:len(buf)+n]
}

func (d *snapshotDecoder) int64() int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.dec.DecodeInt64()
	if err != nil {
		d.fail("integer: %v", err)
	}
	return v
}

func (d *snapshotDecoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.dec.DecodeUint64()
	if err != nil {
		d.fail("unsigned integer: %v", err)
	}
	return v
}

func (d *snapshotDecoder) boolean() bool {
	if d.err != nil {
		return false
	}
	v, err := d.dec.DecodeBool()
	if err != nil {
		d.fail("bool: %v", err)
	}
	return v
}

func (d *snapshotDecoder) hash() (h events.TokenHash) {
	if d.err != nil {
		return h
	}
	n, err := d.dec.DecodeBytesLen()
	if err == nil && n == len(h) {
		err = d.dec.ReadFull(h[:])
	}
	if err != nil || n != len(h) {
		d.fail("token hash: %d bytes (%v)", n, err)
	}
	return h
}

func (d *snapshotDecoder) count(what string, limit int64) int {
	n := d.int64()
	if n < 0 || n > limit {
		d.fail("%s count %d out of range", what, n)
		return 0
	}
	return int(n)
}

// policy writes the policy record: a fixed array, durations in nanoseconds,
// app limits as [app, max] pairs sorted by app.
func (e *snapshotEncoder) policy(p Policy) {
	e.arrayLen(policyRecordFields)
	e.int(int64(p.AccessTTL))
	e.int(int64(p.RefreshTTL))
	e.int(int64(p.AbsoluteTTL))
	e.int(int64(p.IdleTimeout))
	e.boolean(p.SlidingRefresh)
	e.int(int64(p.RememberMeTTL))
	e.int(int64(p.MaxSessionsPerUser))
	e.arrayLen(2 * len(p.AppMaxSessions))
	for _, l := range p.AppMaxSessions {
		e.str(l.App)
		e.int(int64(l.MaxSessions))
	}
	e.str(p.OnSessionLimit)
	e.int(int64(p.Lockout.MaxFailures))
	e.int(int64(p.Lockout.Window))
	e.int(int64(p.Lockout.Duration))
	e.boolean(p.ForceLogoutOnPasswordChange)
	e.int(int64(p.RefreshReuseGrace))
}

// maxAppLimits bounds the app limits a snapshot may hold.
const maxAppLimits = 1 << 16

// policy reads the policy record. Lists grow as their elements are read,
// never from a claimed length.
func (d *snapshotDecoder) policy() Policy {
	var p Policy
	d.arrayLen(policyRecordFields, "policy")
	p.AccessTTL = time.Duration(d.int64())
	p.RefreshTTL = time.Duration(d.int64())
	p.AbsoluteTTL = time.Duration(d.int64())
	p.IdleTimeout = time.Duration(d.int64())
	p.SlidingRefresh = d.boolean()
	p.RememberMeTTL = time.Duration(d.int64())
	p.MaxSessionsPerUser = int(d.int64())
	if d.err == nil {
		n, err := d.dec.DecodeArrayLen()
		if err != nil || n < 0 || n%2 != 0 || n > 2*maxAppLimits {
			d.fail("policy app limits: %d (%v)", n, err)
		}
		for i := 0; i < n/2 && d.err == nil; i++ {
			p.AppMaxSessions = append(p.AppMaxSessions, AppLimit{App: d.str(), MaxSessions: int(d.int64())})
		}
	}
	p.OnSessionLimit = d.str()
	p.Lockout.MaxFailures = int(d.int64())
	p.Lockout.Window = time.Duration(d.int64())
	p.Lockout.Duration = time.Duration(d.int64())
	p.ForceLogoutOnPasswordChange = d.boolean()
	p.RefreshReuseGrace = time.Duration(d.int64())
	return p
}
