package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
)

// wantHome checks a user's home region in the directory ("" for none).
func (h *harness) wantHome(user events.UserID, want string) {
	h.tb.Helper()
	got, ok := h.f.Home(user)
	if ok != (want != "") || got != want {
		h.tb.Errorf("Home(%s) = %q %v, want %q", user, got, ok, want)
	}
}

// wantEmail checks the directory's address of a user and its owner both
// ways ("" for none).
func (h *harness) wantEmail(user events.UserID, want string) {
	h.tb.Helper()
	got, ok := h.f.UserEmail(user)
	if ok != (want != "") || got != want {
		h.tb.Errorf("UserEmail(%s) = %q %v, want %q", user, got, ok, want)
	}
	if want != "" {
		if owner, ok := h.f.EmailOwner(want); !ok || owner != user {
			h.tb.Errorf("EmailOwner(%s) = %q %v, want %s", want, owner, ok, user)
		}
	}
}

// wantNoOwner checks that nobody holds an address.
func (h *harness) wantNoOwner(email string) {
	h.tb.Helper()
	if owner, ok := h.f.EmailOwner(email); ok {
		h.tb.Errorf("EmailOwner(%s) = %s, want nobody", email, owner)
	}
}

func homed(user events.UserID, region string) *events.UserHomed {
	return &events.UserHomed{UserID: user, Region: region}
}

func claimed(user events.UserID, email string) *events.EmailClaimed {
	return &events.EmailClaimed{UserID: user, Email: email}
}

func TestUserHomed_FirstHomeWins(t *testing.T) {
	h := newHarness(t)
	h.wantHome("alice", "")
	if res := h.mustApply(t0, homed("alice", "eu-west-1")); res.Count != 1 {
		t.Errorf("the first home: count %d, want 1", res.Count)
	}
	h.wantHome("alice", "eu-west-1")

	// A second home for the same user, from another region's node, keeps the
	// first and is no error: the writer reads Home to learn where the user
	// lives.
	res := h.mustApply(t0+minute, homed("alice", "us-east-1"))
	if res.Count != 0 {
		t.Errorf("a second home: count %d, want 0", res.Count)
	}
	h.wantHome("alice", "eu-west-1")
	h.mustApply(t0+minute, homed("alice", "eu-west-1"))
	h.wantHome("alice", "eu-west-1")

	h.mustApply(t0+2*minute, homed("bob", "us-east-1"))
	h.wantHome("bob", "us-east-1")
	if homes, emails := h.f.DirectorySize(); homes != 2 || emails != 0 {
		t.Errorf("DirectorySize = %d, %d, want 2, 0", homes, emails)
	}
}

func TestUserHomed_InvalidChangesNothing(t *testing.T) {
	for name, ev := range map[string]*events.UserHomed{
		"no user":        homed("", "eu-west-1"),
		"no region":      homed("alice", ""),
		"upper case":     homed("alice", "EU-west-1"),
		"underscore":     homed("alice", "eu_west_1"),
		"65 bytes":       homed("alice", strings.Repeat("a", 65)),
		"not ascii":      homed("alice", "zürich"),
		"trailing space": homed("alice", "eu-west-1 "),
		"control byte":   homed("alice", "eu\x00"),
		"slash":          homed("alice", "eu/west"),
		"a space":        homed("alice", " "),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			if res := h.apply(t0, ev); !errors.Is(res.Err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", res.Err)
			}
			h.wantHome(ev.UserID, "")
			if d := directoryOf(h.f); d != "" {
				t.Fatalf("an invalid home was stored: %s", d)
			}
		})
	}
	h := newHarness(t)
	h.mustApply(t0, homed("alice", strings.Repeat("a", 64)))
	h.wantHome("alice", strings.Repeat("a", 64))
}

func TestEmailClaimed_AnotherUsersAddressIsRefusedWithoutChange(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t0, claimed("alice", "alice@example.com"))
	h.mustApply(t0, claimed("bob", "bob@example.com"))
	before := snapshotBytes(t, h.f)

	res := h.apply(t0+minute, claimed("bob", "alice@example.com"))
	if !errors.Is(res.Err, ErrEmailInUse) {
		t.Fatalf("claiming alice's address for bob: %v, want ErrEmailInUse", res.Err)
	}
	h.wantEmail("alice", "alice@example.com")
	h.wantEmail("bob", "bob@example.com") // bob keeps his own
	// A user without an address is refused alike.
	if res := h.apply(t0+minute, claimed("carol", "bob@example.com")); !errors.Is(res.Err, ErrEmailInUse) {
		t.Fatalf("claiming bob's address for carol: %v, want ErrEmailInUse", res.Err)
	}
	h.wantEmail("carol", "")
	if a, b := directoryOf(h.f), directoryOf(restored(t, before)); a != b {
		t.Fatalf("a refused claim changed the directory:\n%s\nwas\n%s", a, b)
	}
}

// directoryOf lists the directory's entries, sorted.
func directoryOf(f *FSM) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var lines []string
	for u, r := range f.st.dir.homes {
		lines = append(lines, fmt.Sprintf("home %s %s", u, r))
	}
	for e, u := range f.st.dir.owners {
		lines = append(lines, fmt.Sprintf("claim %s %s", e, u))
	}
	for u, e := range f.st.dir.emails {
		lines = append(lines, fmt.Sprintf("email %s %s", u, e))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestEmailClaimed_ReclaimingMovesTheAddressAndFreesTheOld(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t0, claimed("alice", "alice@example.com"))
	res := h.mustApply(t0+minute, claimed("alice", "alice@example.org"))
	if res.Count != 1 {
		t.Errorf("a move: count %d, want 1", res.Count)
	}
	h.wantEmail("alice", "alice@example.org")
	h.wantNoOwner("alice@example.com")
	if _, emails := h.f.DirectorySize(); emails != 1 {
		t.Errorf("%d addresses held, want 1", emails)
	}
	// The freed address is anyone's.
	h.mustApply(t0+2*minute, claimed("bob", "alice@example.com"))
	h.wantEmail("bob", "alice@example.com")
	// Claiming the address one holds changes nothing.
	if res := h.mustApply(t0+3*minute, claimed("alice", "alice@example.org")); res.Count != 0 {
		t.Errorf("claiming one's own address again: count %d, want 0", res.Count)
	}
	h.wantEmail("alice", "alice@example.org")
}

func TestEmailClaimed_EmptyEmailReleases(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t0, claimed("alice", "alice@example.com"))
	if res := h.mustApply(t0+minute, claimed("alice", "")); res.Count != 1 {
		t.Errorf("a release: count %d, want 1", res.Count)
	}
	h.wantEmail("alice", "")
	h.wantNoOwner("alice@example.com")
	if homes, emails := h.f.DirectorySize(); homes != 0 || emails != 0 {
		t.Errorf("DirectorySize = %d, %d after the release", homes, emails)
	}
	// Releasing again, or for a user that never held one, is no error.
	if res := h.mustApply(t0+2*minute, claimed("alice", "")); res.Count != 0 {
		t.Errorf("a second release: count %d, want 0", res.Count)
	}
	h.mustApply(t0+2*minute, claimed("nobody", ""))
	h.mustApply(t0+3*minute, claimed("bob", "alice@example.com"))
	h.wantEmail("bob", "alice@example.com")
}

func TestEmailClaimed_InvalidChangesNothing(t *testing.T) {
	for name, ev := range map[string]*events.EmailClaimed{
		"no user":          claimed("", "alice@example.com"),
		"no user, release": claimed("", ""),
		"upper case":       claimed("alice", "Alice@example.com"),
		"invalid utf-8":    claimed("alice", "alice\xff@example.com"),
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.mustApply(t0, claimed("alice", "old@example.com"))
			if res := h.apply(t0+minute, ev); !errors.Is(res.Err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", res.Err)
			}
			h.wantEmail("alice", "old@example.com")
			if d := directoryOf(h.f); d != "claim old@example.com alice\nemail alice old@example.com" {
				t.Fatalf("directory after an invalid claim:\n%s", d)
			}
		})
	}
}

// A directory write retried after an unknown outcome must not apply twice:
// the retried claim of an address the user has since left would take it back.
func TestDirectory_RetriedRequestAppliesOnce(t *testing.T) {
	h := newHarness(t)
	first := h.nextEnv(t0, claimed("alice", "alice@example.com"))
	h.applyEnv(first)
	h.mustApply(t0+minute, claimed("alice", "alice@example.org"))
	conflict := h.nextEnv(t0+minute, claimed("bob", "alice@example.org"))
	if res := h.applyEnv(conflict); !errors.Is(res.Err, ErrEmailInUse) {
		t.Fatalf("conflicting claim: %v", res.Err)
	}
	home := h.nextEnv(t0+minute, homed("alice", "eu-west-1"))
	h.applyEnv(home)

	first.Time = t0 + 2*minute
	res := h.applyEnv(first)
	if !res.Duplicate || res.Index != 1 || res.Err != nil || res.Count != 1 {
		t.Fatalf("retried claim: %+v, want the first outcome (index 1, count 1) as a duplicate", res)
	}
	h.wantEmail("alice", "alice@example.org")
	h.wantNoOwner("alice@example.com")

	conflict.Time = t0 + 2*minute
	if res := h.applyEnv(conflict); !res.Duplicate || !errors.Is(res.Err, ErrEmailInUse) {
		t.Fatalf("retried conflicting claim: %+v, want ErrEmailInUse as a duplicate", res)
	}
	h.applyEnv(h.nextEnv(t0+2*minute, claimed("alice", "")))
	// The retry of bob's claim gives its first outcome, though the address
	// is free now: it is not applied again.
	if res := h.applyEnv(conflict); !res.Duplicate || !errors.Is(res.Err, ErrEmailInUse) {
		t.Fatalf("retried conflicting claim after the release: %+v", res)
	}
	h.wantEmail("bob", "")

	home.Time = t0 + 3*minute
	if res := h.applyEnv(home); !res.Duplicate || res.Count != 1 {
		t.Fatalf("retried home: %+v", res)
	}
	h.wantHome("alice", "eu-west-1")
}

// The global group's FSM also takes PolicySet, and the directory events
// leave sessions, users and the policy alone (and the reverse).
func TestDirectory_KeptApartFromSessionsAndCredentials(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t0, &events.UserCredentialsSet{UserID: "alice", Email: "alice@example.com", PasswordHash: "$h"})
	// The directory is another group's: the credentials' address does not
	// hold it.
	h.mustApply(t0, claimed("bob", "alice@example.com"))
	h.wantEmail("bob", "alice@example.com")
	if u, _ := h.f.UserByEmail("alice@example.com"); u.ID != "alice" {
		t.Errorf("UserByEmail = %q, want the credentials' alice", u.ID)
	}
	h.mustApply(t0, homed("alice", "eu-west-1"))
	h.mustApply(t0, &events.UserDeleted{UserID: "alice"})
	h.wantHome("alice", "eu-west-1")
	if st := h.f.Stats(); st.Accounts != 0 || st.Sessions != 0 {
		t.Errorf("stats %+v", st)
	}
}

// goldenDirectoryState is goldenState, every field of format 2, followed by
// a directory: homes (one kept against a second), claims (one moved, one
// released, one refused). A global group holds no sessions, but format 3 is
// format 2 plus the directory, and this state fills every field of it.
func goldenDirectoryState(tb testing.TB) *harness {
	h := goldenState(tb)
	at := t0 + 17*minute
	h.mustApply(at, homed("alice", "eu-west-1"))
	h.mustApply(at, homed("bob", "us-east-1"))
	h.mustApply(at, homed("alice", "us-east-1")) // kept: eu-west-1
	h.mustApply(at+minute, claimed("alice", "alice@example.com"))
	h.mustApply(at+minute, claimed("bob", "bob@example.com"))
	if res := h.apply(at+minute, claimed("carol", "alice@example.com")); !errors.Is(res.Err, ErrEmailInUse) {
		tb.Fatalf("claiming alice's address for carol: %v", res.Err)
	}
	h.mustApply(at+2*minute, claimed("bob", "bob@example.org"))
	h.mustApply(at+2*minute, claimed("dave", "dave@example.com"))
	h.mustApply(at+3*minute, claimed("dave", ""))
	h.mustApply(at+3*minute, homed("carol", "ap.south-2"))
	// A single-region cluster's users listed in one batch: erin is homed
	// and claims her address, bob keeps his home.
	h.mustApply(at+4*minute, &events.DirectoryImported{Region: "eu-west-1", Done: true, Users: []events.ImportedUser{
		{UserID: "bob", Email: "bob@example.net"}, {UserID: "erin", Email: "erin@example.com"}}})
	// A move: carol frozen here, bob's state taken in from another group.
	h.mustApply(at+5*minute, &events.UserFrozen{UserID: "carol", To: "us-east-1", Move: "m-carol"})
	state, err := goldenState(tb).f.ExportUser("bob")
	if err != nil {
		tb.Fatal(err)
	}
	h.mustApply(at+5*minute, &events.UserImported{UserID: "bob", From: "us-east-1", Move: "m-bob", State: state})
	return h
}

// smallDirectoryState is smallState with a small directory, for the fuzzer.
func smallDirectoryState(tb testing.TB) *harness {
	h := smallState(tb)
	h.mustApply(t0+minute, homed("al", "r"))
	h.mustApply(t0+minute, claimed("al", "a@x"))
	return h
}

// wantGoldenDirectory checks the directory goldenDirectoryState builds.
func wantGoldenDirectory(t *testing.T, f *FSM) {
	t.Helper()
	h := &harness{tb: t, f: f}
	h.wantHome("alice", "eu-west-1")
	h.wantHome("bob", "us-east-1")
	h.wantHome("carol", "ap.south-2")
	h.wantHome("dave", "")
	h.wantHome("erin", "eu-west-1")
	h.wantEmail("erin", "erin@example.com")
	if region, done := f.Import(); region != "eu-west-1" || !done {
		t.Errorf("import state %q %v, want eu-west-1, done", region, done)
	}
	if to, move, ok := f.MovedTo("carol"); !ok || to != "us-east-1" || move != "m-carol" {
		t.Errorf("carol moved to %q (%q, %v), want us-east-1", to, move, ok)
	}
	if f.st.imported["bob"] != "m-bob" {
		t.Errorf("bob's move taken in: %q", f.st.imported["bob"])
	}
	h.wantEmail("alice", "alice@example.com")
	h.wantEmail("bob", "bob@example.org")
	h.wantEmail("carol", "")
	h.wantEmail("dave", "")
	h.wantNoOwner("bob@example.com")
	h.wantNoOwner("dave@example.com")
	h.wantNoOwner("bob@example.net") // bob held an address already
	if homes, emails := f.DirectorySize(); homes != 4 || emails != 3 {
		t.Errorf("DirectorySize = %d, %d, want 4, 3", homes, emails)
	}
}

func TestSnapshot_GoldenFormat3(t *testing.T) {
	h := goldenDirectoryState(t)
	wantGoldenDirectory(t, h.f)
	got := snapshotBytes(t, h.f)
	if f := snapshotFormatOf(t, got); f != 3 {
		t.Fatalf("a state with a directory is written in format %d, want 3", f)
	}
	want := frozenGolden(t, goldenSnapshotV3, got)
	if !bytes.Equal(got, want) {
		t.Fatalf("format 3 changed (%d bytes, golden %d): a released format's layout is never changed; a new layout is a new format.\ngot  %x\nwant %x",
			len(got), len(want), got, want)
	}
	r := restored(t, want)
	checkInvariants(t, r)
	wantGoldenDirectory(t, r)
	if again := snapshotBytes(t, r); !bytes.Equal(again, want) {
		t.Fatal("restoring the format 3 golden snapshot and persisting it again changes the bytes")
	}
	if r.AppliedIndex() != h.index || r.LastEventTime() != h.f.LastEventTime() || r.Stats() != h.f.Stats() {
		t.Errorf("restored index %d time %s stats %+v", r.AppliedIndex(), rel(r.LastEventTime()), r.Stats())
	}
	// The rest of format 2 came along: sessions and users.
	if s, ok := r.Session("s-extra"); !ok || s.Label() != "build box" {
		t.Errorf("restored s-extra: %v %+v", ok, s)
	}
	if u, ok := r.User("erin"); !ok || u.Email != "erin@example.com" {
		t.Errorf("restored erin: %v %+v", ok, u)
	}
	// A restored directory goes on like the original.
	for _, f := range []*FSM{h.f, r} {
		g := &harness{tb: t, f: f, index: f.AppliedIndex(), req: 1000}
		if res := g.apply(t0+hour, claimed("carol", "bob@example.org")); !errors.Is(res.Err, ErrEmailInUse) {
			t.Errorf("claim of a restored address: %v", res.Err)
		}
		g.mustApply(t0+hour, claimed("carol", "bob@example.com"))
		g.mustApply(t0+hour, homed("carol", "eu-west-1"))
		g.wantHome("carol", "ap.south-2")
	}
	if !bytes.Equal(snapshotBytes(t, h.f), snapshotBytes(t, r)) {
		t.Fatal("original and restored FSM diverge after the same directory events")
	}
}

// A state without a directory — a region group's, a single-region
// cluster's, or a global group's before its first home or claim — is
// written in format 2 exactly as the previous release wrote it.
func TestSnapshot_EmptyDirectoryWritesThePreviousFormat(t *testing.T) {
	global := newHarness(t)
	p := DefaultPolicy()
	p.AccessTTL = 2 * p.AccessTTL
	global.mustApply(t0, &events.PolicySet{Policy: p})
	global.mustApply(t0, claimed("alice", "")) // releases nothing
	if res := global.apply(t0, homed("alice", "Not A Region")); !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("an invalid home: %v", res.Err)
	}
	global.mustApply(t0+minute, claimed("alice", "alice@example.com")) // then released
	global.mustApply(t0+2*minute, claimed("alice", ""))
	for name, f := range map[string]*FSM{
		"empty":                New(Config{}),
		"golden state":         goldenState(t).f,
		"global, no entries":   global.f,
		"restored, no entries": restored(t, snapshotBytes(t, global.f)),
	} {
		data := snapshotBytes(t, f)
		if got := snapshotFormatOf(t, data); got != snapshotFormatNoDirectory {
			t.Errorf("%s: written in format %d, want %d", name, got, snapshotFormatNoDirectory)
		}
		if fields, err := msgpack.NewDecoder(bytes.NewReader(data)).DecodeArrayLen(); err != nil || fields != headerFields {
			t.Errorf("%s: header of %d fields (%v), want format 2's %d", name, fields, err, headerFields)
		}
	}
	// Byte for byte: the golden state's snapshot is the frozen format 2 file
	// the previous release wrote for the same history.
	if !bytes.Equal(snapshotBytes(t, goldenState(t).f), readFile(t, goldenSnapshot)) {
		t.Errorf("a state without a directory is not written as %s", goldenSnapshot)
	}
	// A format 3 stream with an empty directory, which this version never
	// writes but reads, restores to the state that writes format 2.
	raw := rawFrom(t, global.f)
	raw.format = snapshotFormat
	r := restored(t, raw.bytes(t))
	if !bytes.Equal(snapshotBytes(t, r), snapshotBytes(t, global.f)) {
		t.Error("format 3 with an empty directory does not restore to the same state")
	}
	// One home is enough for format 3; homes are never removed.
	global.mustApply(t0+3*minute, homed("alice", "default"))
	if got := snapshotFormatOf(t, snapshotBytes(t, global.f)); got != snapshotFormat {
		t.Errorf("with one home: format %d, want %d", got, snapshotFormat)
	}
}

func TestRestore_RejectsBadDirectoryAndKeepsState(t *testing.T) {
	h := goldenDirectoryState(t)
	good := snapshotBytes(t, h.f)
	base := func() rawSnapshot {
		r := rawFrom(t, h.f)
		r.homes = append([]homeRecord(nil), r.homes...)
		r.claims = append([]claimRecord(nil), r.claims...)
		return r
	}
	mutate := func(edit func(*rawSnapshot)) []byte {
		r := base()
		edit(&r)
		return r.bytes(t)
	}
	// Where the directory section starts: after the dedup records.
	noDir := base()
	noDir.homes, noDir.claims, noDir.noTrailer = nil, nil, true
	dirStart := len(noDir.bytes(t))

	target := goldenState(t)
	target.mustApply(t0+17*minute, homed("zed", "keep"))
	target.mustApply(t0+17*minute, claimed("zed", "zed@example.com"))
	before := snapshotBytes(t, target.f)
	beforeIndex := target.f.AppliedIndex()

	cases := map[string][]byte{
		"too many homes":                 mutate(func(r *rawSnapshot) { r.nHomes++ }),
		"too few homes":                  mutate(func(r *rawSnapshot) { r.nHomes-- }),
		"negative homes":                 mutate(func(r *rawSnapshot) { r.nHomes = -1 }),
		"too many claims":                mutate(func(r *rawSnapshot) { r.nClaims++ }),
		"too few claims":                 mutate(func(r *rawSnapshot) { r.nClaims-- }),
		"negative claims":                mutate(func(r *rawSnapshot) { r.nClaims = -1 }),
		"homes unsorted":                 mutate(func(r *rawSnapshot) { r.homes[0], r.homes[1] = r.homes[1], r.homes[0] }),
		"home twice":                     mutate(func(r *rawSnapshot) { r.homes[1] = r.homes[0] }),
		"home of no user":                mutate(func(r *rawSnapshot) { r.homes[0].user = "" }),
		"home in no region":              mutate(func(r *rawSnapshot) { r.homes[0].region = "" }),
		"home in a bad region":           mutate(func(r *rawSnapshot) { r.homes[0].region = "EU" }),
		"home region too long":           mutate(func(r *rawSnapshot) { r.homes[0].region = strings.Repeat("a", 65) }),
		"claims unsorted":                mutate(func(r *rawSnapshot) { r.claims[0], r.claims[1] = r.claims[1], r.claims[0] }),
		"email twice":                    mutate(func(r *rawSnapshot) { r.claims[1].email = r.claims[0].email }),
		"empty email":                    mutate(func(r *rawSnapshot) { r.claims[0].email = "" }),
		"upper-case email":               mutate(func(r *rawSnapshot) { r.claims[0].email = "Alice@example.com" }),
		"email of no user":               mutate(func(r *rawSnapshot) { r.claims[0].user = "" }),
		"a user with two emails":         mutate(func(r *rawSnapshot) { r.claims[1].user = r.claims[0].user }),
		"format 3, 9 fields":             append([]byte{0x90 | headerFields}, good[1:]...),
		"format 2 and directory records": mutate(func(r *rawSnapshot) { r.format = snapshotFormatNoDirectory }),
		"home record of 3 fields":        bytes.Replace(good, []byte{0x92, 0xa5, 'a', 'l', 'i', 'c', 'e', 0xa9}, []byte{0x93, 0xa5, 'a', 'l', 'i', 'c', 'e', 0xa9}, 1),
	}
	if bytes.Equal(cases["home record of 3 fields"], good) {
		t.Fatal("the good snapshot does not hold alice's home record as this case expects")
	}
	// Format 3's bytes with the format number 2: a header of 11 fields.
	i := bytes.Index(good, []byte(snapshotMagic)) + len(snapshotMagic)
	if good[i] != 3 {
		t.Fatalf("format byte %x", good[i])
	}
	f2 := bytes.Clone(good)
	f2[i] = 2
	cases["format 2, 11 fields"] = f2
	for n := dirStart - 1; n < len(good); n++ {
		cases[fmt.Sprintf("truncated to %d bytes", n)] = good[:n]
	}
	for name, data := range cases {
		if bytes.Equal(data, good) {
			t.Errorf("%s: the crafted stream equals the good one", name)
			continue
		}
		err := target.f.Restore(&closeTracker{Reader: bytes.NewReader(data)})
		if err == nil {
			t.Errorf("%s: Restore accepted it", name)
			continue
		}
		if !errors.Is(err, ErrSnapshotFormat) {
			t.Errorf("%s: error %v is not ErrSnapshotFormat", name, err)
		}
		if target.f.AppliedIndex() != beforeIndex {
			t.Fatalf("%s: a failed Restore moved the applied index", name)
		}
		if after := snapshotBytes(t, target.f); !bytes.Equal(after, before) {
			t.Fatalf("%s: a failed Restore changed the state", name)
		}
	}
	if err := target.f.Restore(&closeTracker{Reader: bytes.NewReader(good)}); err != nil {
		t.Fatal(err)
	}
	wantGoldenDirectory(t, target.f)
}

// Turning a single-region cluster into regions lists its users in the
// directory in batches: the first batch starts the import and brings the
// region's policy, homes that exist and addresses held stay, every batch
// must name the same region, and after the last batch nothing changes.
func TestDirectory_ImportListsARegionsUsersOnce(t *testing.T) {
	h := newHarness(t)
	h.mustApply(t0, homed("zoe", "us"))
	h.mustApply(t0, claimed("zoe", "shared@example.com"))
	custom := DefaultPolicy()
	custom.AccessTTL = 20 * time.Minute
	res := h.mustApply(t0+minute, &events.DirectoryImported{Region: "eu", Policy: &custom, Users: []events.ImportedUser{
		{UserID: "ada", Email: "ada@example.com"}, {UserID: "linus"}, {UserID: "mia", Email: "shared@example.com"}, {UserID: "zoe"}}})
	if res.Count != 3 {
		t.Errorf("first batch homed %d users, want 3 (zoe had a home)", res.Count)
	}
	if got := h.f.Policy().AccessTTL; got != 20*time.Minute {
		t.Errorf("policy after the first batch: access %v, want the region's 20m", got)
	}
	h.wantHome("ada", "eu")
	h.wantHome("linus", "eu")
	h.wantHome("zoe", "us")
	h.wantEmail("ada", "ada@example.com")
	h.wantEmail("mia", "") // zoe holds the address
	if region, done := h.f.Import(); region != "eu" || done {
		t.Errorf("import state %q %v, want eu, not done", region, done)
	}
	if res := h.apply(t0+minute, &events.DirectoryImported{Region: "us", Users: []events.ImportedUser{{UserID: "x"}}}); !errors.Is(res.Err, ErrInvalid) {
		t.Errorf("a batch of another region: %v, want ErrInvalid", res.Err)
	}
	// A later batch's policy does not replace the one in force.
	other := DefaultPolicy()
	h.mustApply(t0+2*minute, &events.DirectoryImported{Region: "eu", Policy: &other, Done: true, Users: []events.ImportedUser{{UserID: "nora"}}})
	h.wantHome("nora", "eu")
	if got := h.f.Policy().AccessTTL; got != 20*time.Minute {
		t.Errorf("a later batch changed the policy: access %v", got)
	}
	if res := h.mustApply(t0+3*minute, &events.DirectoryImported{Region: "eu", Users: []events.ImportedUser{{UserID: "otto"}}}); res.Count != 0 {
		t.Errorf("a batch after the last homed %d users", res.Count)
	}
	h.wantHome("otto", "")
	if region, done := h.f.Import(); region != "eu" || !done {
		t.Errorf("import state %q %v, want eu, done", region, done)
	}
	// The import state survives a snapshot.
	r := restored(t, snapshotBytes(t, h.f))
	if region, done := r.Import(); region != "eu" || !done {
		t.Errorf("restored import state %q %v", region, done)
	}
}
