package fsm

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The golden snapshots of the formats this version writes: format 2 for a
// state without a directory, format 3 for one with (snapshot.go). Both are
// frozen: the previous release reads format 2 and must keep reading what
// this version writes, and format 3 is released with this version.
const (
	goldenSnapshot   = "testdata/snapshot-v2.golden"
	goldenSnapshotV3 = "testdata/snapshot-v3.golden"
)

// frozenGolden is testkit.Golden for the golden file of a released format:
// -update writes it only when it is missing, never over one that exists.
func frozenGolden(tb testing.TB, path string, got []byte) []byte {
	tb.Helper()
	_, err := os.Stat(path)
	return testkit.Golden(tb, path, got, *update && errors.Is(err, fs.ErrNotExist))
}

// goldenState builds a small fixed state that uses every field of the
// snapshot format: extras, refresh history, each kind of revocation,
// remember-me, several users and apps, and a request-id table holding a
// failure.
func goldenState(tb testing.TB) *harness {
	h := newHarness(tb)
	h.create(t0, "s-plain", "alice")

	ev := created("s-extra", "alice")
	ev.App = "web"
	ev.AuthMethod = events.AuthExchange
	ev.RememberMe = true
	ev.Scopes = []string{"profile", "read"}
	ev.Attributes = []events.Attribute{{Key: "role", Value: "admin"}, {Key: "tenant", Value: "acme"}}
	ev.Device = events.Device{UserAgent: "curl/8.5", IP: "2001:db8::1", Label: "build box"}
	h.mustApply(t0+minute, ev)
	h.mustApply(t0+2*minute, refreshed("s-extra", 1))
	h.mustApply(t0+3*minute, refreshed("s-extra", 2))

	h.create(t0+4*minute, "s-revoked", "bob")
	h.mustApply(t0+5*minute, &events.SessionRevoked{SessionID: "s-revoked", Scope: events.RevokeWholeSession, Reason: events.ReasonAdmin})
	h.create(t0+6*minute, "s-access-revoked", "bob")
	h.mustApply(t0+7*minute, revokeEv("s-access-revoked", events.RevokeAccessToken))
	ev = created("s-refresh-revoked", "carol")
	ev.AuthMethod = events.AuthImpersonation
	h.mustApply(t0+8*minute, ev)
	h.mustApply(t0+9*minute, revokeEv("s-refresh-revoked", events.RevokeRefreshToken))
	if res := h.apply(t0+10*minute, revokeEv("no-such-session", events.RevokeWholeSession)); !errors.Is(res.Err, ErrNotFound) {
		tb.Fatalf("revoke of an unknown session: %v", res.Err)
	}
	h.mustApply(t0+11*minute, &events.UserForceLoggedOut{UserID: "dave", Reason: events.ReasonPasswordReset})

	// Users, a limit, lockouts, an idle timeout and sibling token pairs
	// minted within the refresh grace.
	p := DefaultPolicy()
	p.IdleTimeout = 30 * time.Minute
	p.RefreshReuseGrace = time.Minute
	p.AppMaxSessions = []AppLimit{{App: "mobile", MaxSessions: 3}}
	h.mustApply(t0+12*minute, &events.PolicySet{Policy: p})
	h.mustApply(t0+12*minute, &events.UserCredentialsSet{UserID: "erin", Email: "erin@example.com", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5"})
	h.mustApply(t0+12*minute, &events.UserLimitSet{UserID: "frank", MaxSessions: 2})
	h.mustApply(t0+13*minute, &events.LoginFailed{LoginID: "email:nobody@example.com"})
	h.mustApply(t0+13*minute, &events.LoginFailed{LoginID: LoginByUser + "erin", UserID: "erin"})
	h.create(t0+14*minute, "s-grace", "erin")
	h.mustApply(t0+15*minute, refreshed("s-grace", 1))
	sibling := refreshed("s-grace", 1)
	sibling.NewAccessHash, sibling.NewRefreshHash = ah("s-grace", 9), rh("s-grace", 9)
	h.mustApply(t0+15*minute+20e9, sibling)
	h.mustApply(t0+16*minute, &events.SessionsTouched{Touches: []events.Touch{{SessionID: "s-grace", At: t0 + 16*minute}}})
	return h
}

func TestSnapshot_GoldenFormat(t *testing.T) {
	h := goldenState(t)
	got := snapshotBytes(t, h.f)
	want := frozenGolden(t, goldenSnapshot, got)
	if !bytes.Equal(got, want) {
		t.Fatalf("the snapshot of a state without a directory changed (%d bytes, golden %d). It must stay format %d byte for byte, which the previous release reads; a new layout is a new format, with its own golden file.\ngot  %x\nwant %x",
			len(got), len(want), snapshotFormatNoDirectory, got, want)
	}

	// The golden bytes restore to the same state and re-encode unchanged.
	r := restored(t, want)
	if again := snapshotBytes(t, r); !bytes.Equal(again, want) {
		t.Fatal("restoring the golden snapshot and persisting it again changes the bytes")
	}
	checkInvariants(t, r)
	if r.AppliedIndex() != h.index || r.LastEventTime() != t0+16*minute {
		t.Errorf("restored index %d time %s", r.AppliedIndex(), rel(r.LastEventTime()))
	}
	at := t0 + 12*minute
	for _, c := range []struct {
		token string
		kind  TokenKind
		want  Status
	}{
		{accessToken("s-plain", 0), TokenAccess, StatusActive},
		{accessToken("s-extra", 2), TokenAccess, StatusActive},
		{accessToken("s-extra", 1), TokenNone, StatusUnknown},
		{refreshToken("s-extra", 0), TokenRefresh, StatusRevoked},
		{refreshToken("s-extra", 2), TokenRefresh, StatusActive},
		{accessToken("s-revoked", 0), TokenAccess, StatusRevoked},
		{accessToken("s-access-revoked", 0), TokenAccess, StatusRevoked},
		{refreshToken("s-access-revoked", 0), TokenRefresh, StatusActive},
		{refreshToken("s-refresh-revoked", 0), TokenRefresh, StatusRevoked},
		{accessToken("s-refresh-revoked", 0), TokenAccess, StatusActive},
		{accessToken("s-grace", 1), TokenAccess, StatusActive},
		{accessToken("s-grace", 9), TokenAccess, StatusActive},
		{refreshToken("s-grace", 1), TokenRefresh, StatusActive},
		{refreshToken("s-grace", 9), TokenRefresh, StatusActive},
		{refreshToken("s-grace", 0), TokenRefresh, StatusRevoked},
	} {
		if _, kind, st := r.LookupToken(events.HashToken(c.token), at); kind != c.kind || st != c.want {
			t.Errorf("restored golden: LookupToken(%s) = %d %s, want %d %s", c.token, kind, st, c.kind, c.want)
		}
	}
	s, _ := r.Session("s-extra")
	if s.Label() != "build box" || !reflect.DeepEqual(s.Scopes(), []string{"profile", "read"}) || len(s.Attributes()) != 2 ||
		!s.RememberMe || s.AuthMethod != events.AuthExchange || s.App() != "web" || s.IP() != "2001:db8::1" {
		t.Errorf("restored golden s-extra: %+v", s)
	}
	for _, id := range []events.SessionID{"s-plain", "s-extra", "s-revoked", "s-access-revoked", "s-refresh-revoked"} {
		a, _ := h.f.Session(id)
		b, _ := r.Session(id)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("restored %s differs:\n%+v\n%+v", id, a, b)
		}
	}
	if !reflect.DeepEqual(r.st.dedup.inOrder(), h.f.st.dedup.inOrder()) {
		t.Error("restored request-id table differs")
	}
}

// rawSnapshot writes snapshot streams field by field, so tests can build
// streams the FSM would never write.
type rawSnapshot struct {
	magic     string
	format    uint64
	index     uint64
	lastTime  int64
	nSessions int64
	nDedup    int64
	nUsers    int64
	nLockouts int64
	pruneAt   int64
	policy    any
	sessions  []*Session
	users     []*User
	lockouts  []keyedLockout
	dedup     []dedupEntry
	// Format 3 and later: the directory.
	nHomes  int64
	nClaims int64
	homes   []homeRecord
	claims  []claimRecord
	// importRegion and importDone: the directory's import state.
	importRegion string
	importDone   bool
	moved        []movedRecord
	imported     []importedRecord
	trailer      string
	noTrailer    bool
}

func rawFrom(tb testing.TB, f *FSM) rawSnapshot {
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	fs := snap.(*fsmSnapshot)
	sortSnapshot(fs)
	p := fs.policy
	return rawSnapshot{
		magic: snapshotMagic, format: uint64(fs.format()), index: fs.index, lastTime: fs.lastTime,
		nSessions: int64(len(fs.sessions)), nDedup: int64(len(fs.dedup)),
		nUsers: int64(len(fs.users)), nLockouts: int64(len(fs.lockouts)), pruneAt: fs.pruneAt,
		policy: &p, sessions: fs.sessions, users: fs.users, lockouts: fs.lockouts, dedup: fs.dedup,
		nHomes: int64(len(fs.homes)), nClaims: int64(len(fs.claims)), homes: fs.homes, claims: fs.claims,
		importRegion: fs.importRegion, importDone: fs.importDone, moved: fs.moved, imported: fs.imported,
		trailer: snapshotTrailer,
	}
}

func (r rawSnapshot) bytes(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	e := &snapshotEncoder{enc: msgpack.NewEncoder(&buf)}
	directory := r.format >= 3
	if directory {
		e.arrayLen(format3HeaderFields)
	} else {
		e.arrayLen(headerFields)
	}
	e.str(r.magic)
	e.uint(r.format)
	e.uint(r.index)
	e.int(r.lastTime)
	e.int(r.nSessions)
	e.int(r.nDedup)
	e.int(r.nUsers)
	e.int(r.nLockouts)
	e.int(r.pruneAt)
	if directory {
		e.int(r.nHomes)
		e.int(r.nClaims)
		e.str(r.importRegion)
		e.boolean(r.importDone)
		e.int(int64(len(r.moved)))
		e.int(int64(len(r.imported)))
	}
	switch p := r.policy.(type) {
	case *Policy:
		e.policy(*p)
	default: // a crafted record
		if e.err == nil {
			e.err = e.enc.Encode(r.policy)
		}
	}
	for _, s := range r.sessions {
		e.session(s)
	}
	for _, u := range r.users {
		e.user(u)
	}
	for _, l := range r.lockouts {
		e.lockout(l)
	}
	for _, d := range r.dedup {
		e.arrayLen(dedupRecordFields)
		e.str(d.RequestID)
		e.uint(d.Index)
		e.uint(uint64(d.Code))
		e.uint(uint64(d.Count))
	}
	for _, h := range r.homes {
		e.arrayLen(homeRecordFields)
		e.str(string(h.user))
		e.str(h.region)
	}
	for _, c := range r.claims {
		e.arrayLen(claimRecordFields)
		e.str(c.email)
		e.str(string(c.user))
	}
	for _, m := range r.moved {
		e.arrayLen(movedRecordFields)
		e.str(string(m.user))
		e.str(m.to)
		e.str(m.move)
	}
	for _, m := range r.imported {
		e.arrayLen(importedRecordFields)
		e.str(string(m.user))
		e.str(m.move)
	}
	if !r.noTrailer {
		e.str(r.trailer)
	}
	if e.err != nil {
		tb.Fatal(e.err)
	}
	return buf.Bytes()
}

func TestSnapshot_RawEncoderMatchesPersist(t *testing.T) {
	// The crafted streams below are only meaningful if the raw writer
	// produces exactly what Persist does when left unmodified.
	for _, h := range []*harness{goldenState(t), goldenDirectoryState(t)} {
		if !bytes.Equal(rawFrom(t, h.f).bytes(t), snapshotBytes(t, h.f)) {
			t.Fatal("rawSnapshot does not reproduce Persist's bytes")
		}
	}
}

func TestRestore_RejectsBadStreamsAndKeepsState(t *testing.T) {
	h := goldenState(t)
	good := snapshotBytes(t, h.f)
	base := func() rawSnapshot { return rawFrom(t, h.f) }

	// The target already holds a different state that must survive.
	target := newHarness(t)
	for i := range 20 {
		target.create(t0+int64(i), events.SessionID(fmt.Sprintf("keep-%02d", i)), "zed")
	}
	target.mustApply(t0+minute, refreshed("keep-00", 1))
	before := snapshotBytes(t, target.f)
	beforeIndex := target.f.AppliedIndex()

	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	tooLong := base()
	tooLong.sessions = append([]*Session(nil), tooLong.sessions...)
	long := *tooLong.sessions[0]
	long.extra = &sessionExtra{prevRefresh: make([]events.TokenHash, maxRefreshHistory+1)}
	tooLong.sessions[0] = &long

	mutate := func(edit func(*rawSnapshot)) []byte {
		r := base()
		r.sessions = append([]*Session(nil), r.sessions...)
		edit(&r)
		return r.bytes(t)
	}
	cases := map[string][]byte{
		"empty":                nil,
		"garbage":              garbage,
		"a string":             []byte("\xa5hello"),
		"wrong magic":          mutate(func(r *rawSnapshot) { r.magic = "sessiond-fsm-snapshoT" }),
		"another magic":        mutate(func(r *rawSnapshot) { r.magic = "consul" }),
		"future format":        mutate(func(r *rawSnapshot) { r.format = snapshotFormat + 1 }),
		"format 0":             mutate(func(r *rawSnapshot) { r.format = 0 }),
		"negative sessions":    mutate(func(r *rawSnapshot) { r.nSessions = -1 }),
		"too many sessions":    mutate(func(r *rawSnapshot) { r.nSessions++ }),
		"too few sessions":     mutate(func(r *rawSnapshot) { r.nSessions-- }),
		"too many ids":         mutate(func(r *rawSnapshot) { r.nDedup++ }),
		"too few ids":          mutate(func(r *rawSnapshot) { r.nDedup-- }),
		"ids over capacity":    mutate(func(r *rawSnapshot) { r.nDedup = dedupCapacity + 1 }),
		"policy not a map":     mutate(func(r *rawSnapshot) { r.policy = "policy" }),
		"sessions unsorted":    mutate(func(r *rawSnapshot) { r.sessions[0], r.sessions[1] = r.sessions[1], r.sessions[0] }),
		"session id twice":     mutate(func(r *rawSnapshot) { r.sessions[1] = r.sessions[0]; r.nSessions = int64(len(r.sessions)) }),
		"wrong trailer":        mutate(func(r *rawSnapshot) { r.trailer = "END" }),
		"no trailer":           mutate(func(r *rawSnapshot) { r.noTrailer = true }),
		"history too long":     tooLong.bytes(t),
		"header of 5 fields":   append([]byte{0x95}, good[1:]...),
		"header of 7 fields":   append([]byte{0x97}, good[1:]...),
		"record of 20 fields":  bytes.Replace(good, []byte{0xdc, 0x00, sessionRecordFields}, []byte{0xdc, 0x00, sessionRecordFields - 1}, 1),
		"first byte flipped":   append([]byte{good[0] ^ 0xff}, good[1:]...),
		"trailer byte flipped": append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^0x20),
	}
	if bytes.Equal(cases["record of 20 fields"], good) {
		// msgpack writes small array lengths as a fixarray byte.
		cases["record of 20 fields"] = bytes.Replace(good, []byte{0x90 | sessionRecordFields, 0xa7, 's', '-'}, []byte{0x90 | (sessionRecordFields - 1), 0xa7, 's', '-'}, 1)
	}
	// A session field longer than a stored session can hold: the first
	// session's app, "default", made 300 bytes long.
	if !bytes.Contains(good, []byte("\xa7default")) {
		t.Fatal("the good snapshot does not hold the app this case rewrites")
	}
	cases["app too long"] = bytes.Replace(good, []byte("\xa7default"), append([]byte{0xda, 0x01, 0x2c}, bytes.Repeat([]byte("x"), 300)...), 1)
	for n := range len(good) {
		cases[fmt.Sprintf("truncated to %d bytes", n)] = good[:n]
	}
	beforeStats := target.f.Stats()
	for name, data := range cases {
		if bytes.Equal(data, good) {
			t.Errorf("%s: the crafted stream equals the good one", name)
			continue
		}
		rc := &closeTracker{Reader: bytes.NewReader(data)}
		err := target.f.Restore(rc)
		if err == nil {
			t.Errorf("%s: Restore accepted it", name)
			continue
		}
		if !errors.Is(err, ErrSnapshotFormat) {
			t.Errorf("%s: error %v is not ErrSnapshotFormat", name, err)
		}
		if !rc.closed {
			t.Errorf("%s: Restore did not close the reader", name)
		}
		if target.f.AppliedIndex() != beforeIndex {
			t.Fatalf("%s: a failed Restore moved the applied index to %d", name, target.f.AppliedIndex())
		}
		if target.f.Stats() != beforeStats {
			t.Fatalf("%s: a failed Restore changed the state", name)
		}
		if strings.HasPrefix(name, "truncated") {
			continue // compared in full once, below: there are many of them
		}
		if after := snapshotBytes(t, target.f); !bytes.Equal(after, before) {
			t.Fatalf("%s: a failed Restore changed the state", name)
		}
	}
	if after := snapshotBytes(t, target.f); !bytes.Equal(after, before) {
		t.Fatal("failed Restores of truncated streams changed the state")
	}
	// The kept state still works.
	target.wantAccess(accessToken("keep-00", 1), t0+2*minute, StatusActive)
	target.mustApply(t0+2*minute, refreshed("keep-00", 2))
	// And a good stream still restores over it.
	if err := target.f.Restore(&closeTracker{Reader: bytes.NewReader(good)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, target.f), good) {
		t.Fatal("a good Restore after failed ones does not give the snapshot's state")
	}
}

// Regression guard (was a bug in fsm/snapshot.go, readSnapshot: `nSessions := d.count("session",
// 1<<40)` then `st := newState(nSessions)`): Restore sizes its maps from
// the session count in the header before reading a single record. A
// 32-byte stream claiming 2^26 sessions makes Restore allocate ~10 GB and
// take ~40 s before it fails with EOF; 2^28 exhausts this machine's memory.
// A corrupt or truncated snapshot file (or a malicious peer's
// InstallSnapshot) thus kills the node instead of being rejected. The size
// hint should be capped (say at a few million) and the maps left to grow.
func TestRestore_HeaderCountDoesNotDriveAllocation(t *testing.T) {
	raw := rawSnapshot{magic: snapshotMagic, format: snapshotFormat, index: 1, nSessions: 1 << 18, noTrailer: true}
	raw.policy = &Policy{}
	data := raw.bytes(t)[:34] // the header alone, then EOF
	if alloc := refusedRestoreAlloc(t, "a header without records", data); alloc > refusedRestoreLimit {
		t.Errorf("Restore of a %d-byte stream claiming %d sessions allocated %d MB before failing (limit %d MB); the allocation grows linearly with the claimed count up to 2^40",
			len(data), raw.nSessions, alloc>>20, refusedRestoreLimit>>20)
	}
}

// refusedRestoreLimit is the most a Restore may allocate before it refuses
// a small stream.
const refusedRestoreLimit = 8 << 20

// refusedRestoreAlloc restores data into an empty FSM, fails the test if
// Restore accepts it, and returns the bytes allocated meanwhile.
func refusedRestoreAlloc(t *testing.T, what string, data []byte) uint64 {
	t.Helper()
	f := New(Config{})
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	err := f.Restore(&closeTracker{Reader: bytes.NewReader(data)})
	runtime.ReadMemStats(&m1)
	if err == nil {
		t.Fatalf("Restore accepted %s", what)
	}
	return m1.TotalAlloc - m0.TotalAlloc
}

// Regression guard (was a bug in fsm/snapshot.go, readSnapshot: `d.dec.Decode(&st.policy)`): the
// policy is decoded by msgpack's reflection decoder, and msgpack v5.4.1
// allocates a slice's claimed length up front whatever its limits say
// (decode_slice.go, decodeSliceValue: `noLimit := d.flags&disableAllocLimitFlag
// != 1` is always true). A snapshot whose policy claims 2^32-1 app limits in
// a 5-byte array header makes Restore allocate ~100 GB (24 bytes each) and
// kill the node. Policy.AppMaxSessions should be decoded by hand with a
// bound, like the session records are. (events.Decode has the same exposure
// through SessionCreated.Attributes.)
func TestRestore_PolicyListLengthDoesNotDriveAllocation(t *testing.T) {
	// The policy record: 14 fields, the first seven plain values, then the
	// app limits claiming 2^20 [app, max] pairs, then EOF.
	policy := []byte{0x9e, 0x00, 0x00, 0x00, 0x00, 0xc2, 0x00, 0x00}
	policy = append(policy, 0xdd, 0x00, 0x20, 0x00, 0x00)
	raw := rawSnapshot{magic: snapshotMagic, format: snapshotFormat, index: 1, policy: msgpack.RawMessage(policy), noTrailer: true}
	data := raw.bytes(t)
	if alloc := refusedRestoreAlloc(t, "a truncated policy", data); alloc > refusedRestoreLimit {
		t.Errorf("Restore of a %d-byte stream whose policy claims 2^20 app limits allocated %d MB before failing (limit %d MB); 2^32-1 would need ~100 GB",
			len(data), alloc>>20, refusedRestoreLimit>>20)
	}
}

// checkRestore is FuzzRestore's check of one stream; it reports whether
// Restore accepted it. A refusal must be ErrSnapshotFormat and leave the
// FSM as it was; what is accepted must persist to a fixed point of
// restore+persist, and reads and writes on it must not panic.
func checkRestore(t *testing.T, data []byte) bool {
	t.Helper()
	fsm := New(Config{})
	err := fsm.Restore(&closeTracker{Reader: bytes.NewReader(data)})
	if err != nil {
		if !errors.Is(err, ErrSnapshotFormat) {
			t.Fatalf("Restore error %v is not ErrSnapshotFormat", err)
		}
		if fsm.AppliedIndex() != 0 || fsm.Stats() != (Stats{}) {
			t.Fatal("a failed Restore changed the FSM")
		}
		return false
	}
	// Whatever was accepted persists, and its persisted form is a fixed
	// point of restore+persist.
	once := snapshotBytes(t, fsm)
	twice := snapshotBytes(t, restored(t, once))
	if !bytes.Equal(once, twice) {
		t.Fatalf("restore+persist is not stable:\n%x\n%x", once, twice)
	}
	// Reads on whatever was restored must not panic.
	for _, s := range snapshotSessions(t, fsm) {
		fsm.ValidateAccess(s.AccessHash, s.CreatedAt)
		fsm.LookupToken(s.RefreshHash, s.CreatedAt)
		fsm.UserSessions(s.UserID, s.CreatedAt)
	}
	// So must applies (without request ids: the restored table may hold
	// any): revoke everything, collect everything, create one more.
	h := &harness{tb: t, f: fsm, index: fsm.AppliedIndex()}
	now := fsm.LastEventTime()
	for _, ev := range []events.Event{
		&events.SessionsBulkRevoked{Reason: events.ReasonBulk},
		&events.SessionsExpired{Until: now},
		created("fuzz-new", "fuzz-user"),
		&events.UserHomed{UserID: "fuzz-user", Region: "fuzz"},
		&events.EmailClaimed{UserID: "fuzz-user", Email: "fuzz@example.com"},
		&events.EmailClaimed{UserID: "al", Email: "fuzz@example.com"},
		&events.EmailClaimed{UserID: "al"},
	} {
		h.applyEnv(events.Envelope{Time: now, Event: ev})
	}
	return true
}

// smallState holds one of each kind of record a snapshot carries, in few
// bytes: the fuzzer mutates (and minimises) inputs of its seeds' size.
func smallState(tb testing.TB) *harness {
	h := newHarness(tb)
	ev := created("s", "al")
	ev.App, ev.RememberMe, ev.Scopes = "w", true, []string{"r"}
	ev.Attributes = []events.Attribute{{Key: "k", Value: "v"}}
	h.mustApply(t0, ev)
	h.mustApply(t0+minute, refreshed("s", 1))
	p := DefaultPolicy()
	p.IdleTimeout = time.Hour
	p.AppMaxSessions = []AppLimit{{App: "w", MaxSessions: 2}}
	h.mustApply(t0+minute, &events.PolicySet{Policy: p})
	h.mustApply(t0+minute, &events.UserCredentialsSet{UserID: "al", Email: "a@x", PasswordHash: "$h"})
	h.mustApply(t0+minute, &events.LoginFailed{LoginID: LoginByUser + "al", UserID: "al"})
	return h
}

// FuzzRestore feeds Restore any stream (see checkRestore). Its seeds are
// small; TestRestore_LargeStatesPassTheFuzzCheck runs the same check on
// the golden state and a long generated history.
func FuzzRestore(f *testing.F) {
	small := snapshotBytes(f, smallState(f).f)
	g := newEventGen(f, 9)
	g.logs(6)
	header := rawSnapshot{magic: snapshotMagic, format: snapshotFormat, index: 1, nSessions: 1 << 18, noTrailer: true, policy: &Policy{}}
	f.Add(small)
	f.Add(small[:len(small)/2])
	f.Add(snapshotBytes(f, g.f))
	f.Add(snapshotBytes(f, New(Config{})))
	f.Add(header.bytes(f)[:34]) // claims 2^18 sessions, then ends
	f.Add([]byte{})
	f.Add([]byte{0x96, 0xb5})
	f.Add(readFile(f, goldenSnapshotV1First)) // the older format's reader
	f.Add(readFile(f, goldenSnapshotV1))
	f.Add(snapshotBytes(f, smallDirectoryState(f).f)) // format 3
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		checkRestore(t, data)
	})
}

func TestRestore_LargeStatesPassTheFuzzCheck(t *testing.T) {
	g := newEventGen(t, 9)
	g.logs(300)
	for name, data := range map[string][]byte{
		"golden state":     snapshotBytes(t, goldenState(t).f),
		"300 random logs":  snapshotBytes(t, g.f),
		"the small state":  snapshotBytes(t, smallState(t).f),
		"an empty machine": snapshotBytes(t, New(Config{})),
		"format 1":         readFile(t, goldenSnapshotV1),
		"format 1, first":  readFile(t, goldenSnapshotV1First),
		"format 3 golden":  readFile(t, goldenSnapshotV3),
		"directory state":  snapshotBytes(t, goldenDirectoryState(t).f),
		"small directory":  snapshotBytes(t, smallDirectoryState(t).f),
	} {
		t.Run(name, func(t *testing.T) {
			if !checkRestore(t, data) {
				t.Fatal("Restore refused a snapshot Persist wrote")
			}
		})
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func TestWriteSnapshot_EqualsPersist(t *testing.T) {
	h := goldenState(t)
	var buf bytes.Buffer
	if err := h.f.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), snapshotBytes(t, h.f)) {
		t.Error("WriteSnapshot and Snapshot+Persist write different bytes")
	}
}
