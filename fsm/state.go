package fsm

import (
	"container/heap"
	"slices"

	"github.com/sessiond/sessiond/events"
)

// state is everything the FSM holds. It is replaced whole on Restore.
type state struct {
	sessions  sessionIndex
	byAccess  hashIndex
	byRefresh hashIndex // current and remembered previous refresh hashes
	byUser    map[events.UserID]*userSessions
	expiry    expiryQueue
	// tombstones counts the stored sessions that are tombstones
	// (Session.tombstone). insert, replace and remove, through which every
	// change of a session goes, keep it; a restore rebuilds it by inserting.
	tombstones int

	users    map[events.UserID]*User // users with credentials or a limit
	emails   map[string]events.UserID
	lockouts map[string]*lockout // by login identifier ("email:…" / "user:…")
	// lockoutsPruneAt is no later than the earliest time a lockout record
	// can be dropped (MaxInt64 when there are none).
	lockoutsPruneAt int64

	// dir is the directory (directory.go), which only the global group
	// fills.
	dir directory

	// moved lists the users this group froze because their home moves to
	// another region; imported, the move each user last came in with
	// (move.go). Only region groups of a cluster with regions fill them.
	moved    map[events.UserID]movedUser
	imported map[events.UserID]string

	policy   Policy
	dedup    *dedupTable
	lastTime int64 // the latest event time applied; event times never go back
}

func newState(sizeHint int) *state {
	return &state{
		sessions:  newSessionIndex(sizeHint),
		byAccess:  newHashIndex(sizeHint),
		byRefresh: newHashIndex(sizeHint),
		byUser:    make(map[events.UserID]*userSessions),
		expiry:    newExpiryQueue(),
		users:     make(map[events.UserID]*User),
		emails:    make(map[string]events.UserID),
		lockouts:  make(map[string]*lockout),
		dir:       newDirectory(),
		moved:     make(map[events.UserID]movedUser),
		imported:  make(map[events.UserID]string),

		lockoutsPruneAt: noTime,
		policy:          DefaultPolicy(),
		dedup:           newDedupTable(dedupCapacity),
	}
}

// userSessions lists the ids of one user's sessions (any status) in the
// order they were created. It also holds the canonical copy of the user id
// string, which sessions share.
type userSessions struct {
	id  events.UserID
	ids []events.SessionID
}

// noTime is "never".
const noTime = int64(1<<63 - 1)

// accessHashes visits every live access-token hash of s.
func (s *Session) accessHashes(visit func(events.TokenHash)) {
	visit(s.AccessHash)
	for _, p := range s.ex().pairs {
		visit(p.access)
	}
}

// refreshHashes visits every refresh-token hash the index keeps for s: the
// live ones and the remembered previous ones (for reuse detection).
func (s *Session) refreshHashes(visit func(events.TokenHash)) {
	visit(s.RefreshHash)
	x := s.ex()
	for _, p := range x.pairs {
		visit(p.refresh)
	}
	for _, h := range x.prevRefresh {
		visit(h)
	}
}

func (s *Session) knowsRefresh(h events.TokenHash) bool {
	return s.holdsLiveRefresh(h) || s.hasPreviousRefresh(h)
}

// insert adds a new session to every index.
func (st *state) insert(s *Session) {
	u := st.byUser[s.UserID]
	if u == nil {
		u = &userSessions{id: s.UserID}
		st.byUser[s.UserID] = u
	}
	s.UserID = u.id
	u.ids = append(u.ids, s.ID())
	st.sessions.put(s)
	s.accessHashes(func(h events.TokenHash) { st.byAccess.add(h, s) })
	s.refreshHashes(func(h events.TokenHash) { st.byRefresh.add(h, s) })
	st.expiry.add(s.ID(), s.EndsAt())
	st.tombstones += tombstoneCount(s)
}

// replace stores next in place of prev (same id): the token indexes point
// at the new value, hashes it no longer holds are dropped, new ones are
// added, and the expiry queue learns a new end.
func (st *state) replace(prev, next *Session) {
	st.sessions.put(next)
	st.tombstones += tombstoneCount(next) - tombstoneCount(prev)
	if prev.AccessHash == next.AccessHash && prev.extra == nil && next.extra == nil {
		// The common case (a touch, a flag): one access hash, unchanged.
		st.byAccess.repoint(next.AccessHash, prev, next)
	} else {
		prev.accessHashes(func(h events.TokenHash) {
			if next.holdsAccess(h) {
				st.byAccess.repoint(h, prev, next)
			} else {
				st.byAccess.remove(h, prev)
			}
		})
		next.accessHashes(func(h events.TokenHash) {
			if !prev.holdsAccess(h) {
				st.byAccess.add(h, next)
			}
		})
	}
	prev.refreshHashes(func(h events.TokenHash) {
		if next.knowsRefresh(h) {
			st.byRefresh.repoint(h, prev, next)
		} else {
			st.byRefresh.remove(h, prev)
		}
	})
	next.refreshHashes(func(h events.TokenHash) {
		if !prev.knowsRefresh(h) {
			st.byRefresh.add(h, next)
		}
	})
	if prev.EndsAt() != next.EndsAt() {
		st.expiry.add(next.ID(), next.EndsAt())
	}
}

// remove drops a session from every index (garbage collection).
func (st *state) remove(s *Session) {
	st.sessions.remove(s.ID())
	st.tombstones -= tombstoneCount(s)
	s.accessHashes(func(h events.TokenHash) { st.byAccess.remove(h, s) })
	s.refreshHashes(func(h events.TokenHash) { st.byRefresh.remove(h, s) })
	if u := st.byUser[s.UserID]; u != nil {
		if i := slices.Index(u.ids, s.ID()); i >= 0 {
			u.ids = slices.Delete(u.ids, i, i+1)
		}
		if len(u.ids) == 0 {
			delete(st.byUser, s.UserID)
		}
	}
}

// tombstoneCount is 1 for a tombstone, else 0.
func tombstoneCount(s *Session) int {
	if s.tombstone() {
		return 1
	}
	return 0
}

// byAccessHash finds the session holding the live access token hashing to h.
func (st *state) byAccessHash(h events.TokenHash) *Session {
	return st.byAccess.get(h, func(s *Session) bool { return s.holdsAccess(h) })
}

// byRefreshHash finds the session whose live or remembered previous refresh
// token hashes to h.
func (st *state) byRefreshHash(h events.TokenHash) *Session {
	return st.byRefresh.get(h, func(s *Session) bool { return s.knowsRefresh(h) })
}

// hashIndex maps token hashes to sessions. The key is the hash's first
// eight bytes, which keeps the map small; a lookup confirms the full hash
// against the session it finds. Two stored hashes sharing a prefix (about
// one chance in 10^7 at a million sessions) put the later one in the
// overflow map, keyed by the full hash, which is consulted first. Values
// point straight at the stored session (one lookup on the validation path),
// so a session's replacement repoints its entries.
type hashIndex struct {
	primary  map[uint64]*Session
	overflow map[events.TokenHash]*Session
}

func newHashIndex(sizeHint int) hashIndex {
	return hashIndex{
		primary:  make(map[uint64]*Session, sizeHint),
		overflow: make(map[events.TokenHash]*Session),
	}
}

func (x *hashIndex) add(h events.TokenHash, s *Session) {
	if _, taken := x.primary[h.Prefix64()]; taken {
		x.overflow[h] = s
		return
	}
	x.primary[h.Prefix64()] = s
}

// remove forgets h, stored for session s. A stored hash is either in
// overflow or is the holder of its primary slot; the identity check keeps a
// mistaken removal from dropping another session's entry.
func (x *hashIndex) remove(h events.TokenHash, s *Session) {
	if got, ok := x.overflow[h]; ok && got == s {
		delete(x.overflow, h)
		return
	}
	if got, ok := x.primary[h.Prefix64()]; ok && got == s {
		delete(x.primary, h.Prefix64())
	}
}

// repoint makes h, stored for prev, point at next.
func (x *hashIndex) repoint(h events.TokenHash, prev, next *Session) {
	if got, ok := x.overflow[h]; ok && got == prev {
		x.overflow[h] = next
		return
	}
	if got, ok := x.primary[h.Prefix64()]; ok && got == prev {
		x.primary[h.Prefix64()] = next
	}
}

// get finds the session stored for h; matches confirms that a candidate
// really holds h (the primary map only knows the prefix).
func (x *hashIndex) get(h events.TokenHash, matches func(*Session) bool) *Session {
	if len(x.overflow) > 0 {
		if s, ok := x.overflow[h]; ok {
			return s
		}
	}
	if s := x.primary[h.Prefix64()]; s != nil && matches(s) {
		return s
	}
	return nil
}

// expiryBucket is the width of the expiry queue's time buckets. Garbage
// collection is this coarse: a session is removed up to one bucket after it
// ends, which costs memory, never correctness (reads check times themselves).
const expiryBucket = int64(60e9)

// expiryQueue finds sessions due for garbage collection without scanning
// them all. Buckets of session ids are keyed by EndsAt/expiryBucket, and a
// min-heap orders the bucket keys. Entries are lazy: a session whose end
// moved is added again to its new bucket and its old entry is ignored when
// that bucket is collected.
type expiryQueue struct {
	buckets map[int64][]events.SessionID
	keys    bucketHeap
}

func newExpiryQueue() expiryQueue {
	return expiryQueue{buckets: make(map[int64][]events.SessionID)}
}

func bucketOf(t int64) int64 {
	if t < 0 {
		return 0
	}
	return t / expiryBucket
}

func (q *expiryQueue) add(id events.SessionID, endsAt int64) {
	k := bucketOf(endsAt)
	ids, ok := q.buckets[k]
	if !ok {
		heap.Push(&q.keys, k)
	}
	q.buckets[k] = append(ids, id)
}

// next is the earliest time at which a whole bucket is due, or MaxInt64.
func (q *expiryQueue) next() int64 {
	if len(q.keys) == 0 {
		return 1<<63 - 1
	}
	return (q.keys[0] + 1) * expiryBucket
}

// popDue removes and returns the ids of every bucket that ends by until.
func (q *expiryQueue) popDue(until int64, visit func(events.SessionID)) {
	for len(q.keys) > 0 && (q.keys[0]+1)*expiryBucket <= until {
		k := heap.Pop(&q.keys).(int64)
		for _, id := range q.buckets[k] {
			visit(id)
		}
		delete(q.buckets, k)
	}
}

type bucketHeap []int64

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h bucketHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bucketHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *bucketHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sessionIndex maps session ids to sessions. Its main map is keyed by a
// 64-bit hash of the id instead of the id string: 16-byte entries instead of
// 24, about 17 bytes less per session at a million. The rare id whose hash
// another id already holds goes to a small map keyed by the full id. Where
// an id lands never changes what a lookup answers, so the hash may be any
// function; it is a fixed one all the same.
type sessionIndex struct {
	primary  map[uint64]*Session
	overflow map[events.SessionID]*Session
}

func newSessionIndex(sizeHint int) sessionIndex {
	return sessionIndex{
		primary:  make(map[uint64]*Session, sizeHint),
		overflow: make(map[events.SessionID]*Session),
	}
}

// idKey is the 64-bit FNV-1a hash of a session id.
func idKey(id events.SessionID) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

func (x *sessionIndex) get(id events.SessionID) *Session { return x.getKeyed(id, idKey(id)) }

// put stores s under its id, in place of any session stored under that id.
func (x *sessionIndex) put(s *Session) { x.putKeyed(s, idKey(s.ID())) }

func (x *sessionIndex) remove(id events.SessionID) { x.removeKeyed(id, idKey(id)) }

// The keyed forms take the id's key as given, so that tests can make two
// ids share one.

func (x *sessionIndex) getKeyed(id events.SessionID, k uint64) *Session {
	if len(x.overflow) > 0 {
		if s, ok := x.overflow[id]; ok {
			return s
		}
	}
	if s := x.primary[k]; s != nil && s.ID() == id {
		return s
	}
	return nil
}

func (x *sessionIndex) putKeyed(s *Session, k uint64) {
	id := s.ID()
	if len(x.overflow) > 0 {
		if _, ok := x.overflow[id]; ok {
			x.overflow[id] = s
			return
		}
	}
	if held := x.primary[k]; held != nil && held.ID() != id {
		x.overflow[id] = s
		return
	}
	x.primary[k] = s
}

func (x *sessionIndex) removeKeyed(id events.SessionID, k uint64) {
	if len(x.overflow) > 0 {
		if _, ok := x.overflow[id]; ok {
			delete(x.overflow, id)
			return
		}
	}
	if held := x.primary[k]; held != nil && held.ID() == id {
		delete(x.primary, k)
	}
}

func (x *sessionIndex) len() int { return len(x.primary) + len(x.overflow) }

// all visits every session in no particular order. visit may put a new
// value for the session it is given, nothing else.
func (x *sessionIndex) all(visit func(*Session)) {
	for _, s := range x.primary {
		visit(s)
	}
	for _, s := range x.overflow {
		visit(s)
	}
}
