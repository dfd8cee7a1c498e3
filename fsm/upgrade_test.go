package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
)

// A node restarts on the data an older version wrote: a snapshot in an
// older format, then the Raft log after it, whose entries older versions
// encoded. These tests hold the current build to reading both into the state
// it would have built itself.
//
// The format 1 files were written by the last commit that wrote format 1
// (4f0e3dd, the parent of the commit that introduced format 2), built in a
// temporary worktree with a throwaway test that applied the log below and
// saved its bytes:
//
//	testdata/log-v1.golden       22 entries of a format 1 history
//	                             (creates, refreshes, revocations of each kind,
//	                             a force logout, a retried create, a bulk
//	                             revocation, a refresh token reuse, expiry),
//	                             one "index type hex" line each
//	testdata/snapshot-v1.golden  its snapshot after entry 16 (format 1)
//
// The first builds (1fa15a8, until ed5e889) wrote format 1 with the policy
// as a msgpack map; testdata/snapshot-v1-first.golden is its snapshot after the same 16
// entries, written the same way with that commit's code.
//
// testdata/log-v2.golden continues that history with what the current
// version adds (a policy change, users, a session limit, lockout failures,
// idle touches, refresh grace siblings, batch entries, a user deleted), as
// the current code encodes it; -update rewrites it. It is never rewritten
// once a later format exists: it is then the previous format's log.
const (
	goldenSnapshotV1      = "testdata/snapshot-v1.golden"
	goldenSnapshotV1First = "testdata/snapshot-v1-first.golden"
	goldenLogV1           = "testdata/log-v1.golden"
	goldenLogV2           = "testdata/log-v2.golden"

	// snapshotV1Index is the last entry of log-v1.golden in snapshot-v1.golden.
	snapshotV1Index = 16
)

// readGoldenLog reads a golden log of "index type hex" lines.
func readGoldenLog(tb testing.TB, path string) []*raft.Log {
	tb.Helper()
	var logs []*raft.Log
	for _, line := range strings.Split(strings.TrimSpace(string(readFile(tb, path))), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			tb.Fatalf("%s: bad line %q", path, line)
		}
		index, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		entry, err := hex.DecodeString(f[2])
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		if n := len(logs); n > 0 && index != logs[n-1].Index+1 {
			tb.Fatalf("%s: index %d after %d", path, index, logs[n-1].Index)
		}
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: index, Term: 1, Data: entry})
	}
	return logs
}

// replay applies logs one entry at a time, as Raft hands them to a node
// catching up.
func replay(tb testing.TB, f *FSM, logs []*raft.Log) {
	tb.Helper()
	for _, l := range logs {
		if out := f.ApplyBatch([]*raft.Log{l}); len(out) != 1 || out[0] == nil {
			tb.Fatalf("entry %d: response %v", l.Index, out)
		}
	}
}

// logAfter returns the entries of logs after index.
func logAfter(logs []*raft.Log, index uint64) []*raft.Log {
	for i, l := range logs {
		if l.Index > index {
			return logs[i:]
		}
	}
	return nil
}

// snapshotFormatOf reads the format number from a snapshot's header.
func snapshotFormatOf(tb testing.TB, data []byte) uint64 {
	tb.Helper()
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	if _, err := dec.DecodeArrayLen(); err != nil {
		tb.Fatal(err)
	}
	if magic, err := dec.DecodeString(); err != nil || magic != snapshotMagic {
		tb.Fatalf("magic %q (%v)", magic, err)
	}
	format, err := dec.DecodeUint64()
	if err != nil {
		tb.Fatal(err)
	}
	return format
}

// TestRestore_EveryReleasedFormatGivesTheCurrentState restores the golden
// snapshot of every format ever released and persists it again: the bytes
// must be those the current version writes after the same history.
func TestRestore_EveryReleasedFormatGivesTheCurrentState(t *testing.T) {
	logV1 := func(t *testing.T) *FSM {
		f := New(Config{})
		replay(t, f, readGoldenLog(t, goldenLogV1)[:snapshotV1Index])
		return f
	}
	// writes is the format the current version writes after the history:
	// format 2 without a directory, 3 with one.
	for _, c := range []struct {
		format  uint64
		golden  string
		history func(t *testing.T) *FSM
		writes  uint64
	}{
		{1, goldenSnapshotV1First, logV1, snapshotFormatNoDirectory},
		{1, goldenSnapshotV1, logV1, snapshotFormatNoDirectory},
		{2, goldenSnapshot, func(t *testing.T) *FSM { return goldenState(t).f }, snapshotFormatNoDirectory},
		{3, goldenSnapshotV3, func(t *testing.T) *FSM { return goldenDirectoryState(t).f }, snapshotFormat},
	} {
		t.Run(c.golden, func(t *testing.T) {
			old := readFile(t, c.golden)
			if got := snapshotFormatOf(t, old); got != c.format {
				t.Fatalf("%s holds format %d: a golden file of a released format is never rewritten", c.golden, got)
			}
			r := restored(t, old)
			checkInvariants(t, r)
			want := snapshotBytes(t, c.history(t))
			if snapshotFormatOf(t, want) != c.writes {
				t.Fatalf("the current version writes format %d, want %d", snapshotFormatOf(t, want), c.writes)
			}
			if got := snapshotBytes(t, r); !bytes.Equal(got, want) {
				t.Fatalf("format %d restored and persisted differs from the current version's state after the same history\ngot  %x\nwant %x", c.format, got, want)
			}
		})
	}
	// Every format up to the current one has its golden file and its case
	// above.
	for format := 1; format <= snapshotFormat; format++ {
		if _, err := os.Stat(fmt.Sprintf("testdata/snapshot-v%d.golden", format)); err != nil {
			t.Errorf("format %d has no golden snapshot: %v", format, err)
		}
	}
}

// TestReplay_PreviousFormatLogGivesIdenticalState replays a whole log an
// older version wrote, continued by the current version's entries, twice:
// into a fresh state machine, and into one restored from the older
// version's snapshot taken partway. Both end byte for byte the same.
func TestReplay_PreviousFormatLogGivesIdenticalState(t *testing.T) {
	v1 := readGoldenLog(t, goldenLogV1)
	if *update && snapshotFormat == 2 { // later, log-v2 is the previous format's log
		writeLogV2(t, v1)
	}
	v2 := readGoldenLog(t, goldenLogV2)
	if v2[0].Index != v1[len(v1)-1].Index+1 {
		t.Fatalf("log-v2 starts at %d, log-v1 ends at %d", v2[0].Index, v1[len(v1)-1].Index)
	}
	batches := 0
	for _, l := range v2 {
		if events.IsBatch(l.Data) {
			batches++
		}
	}
	if batches == 0 {
		t.Fatal("log-v2 holds no batch entry")
	}

	fresh := New(Config{})
	replay(t, fresh, v1)
	replay(t, fresh, v2)

	fromOld := restored(t, readFile(t, goldenSnapshotV1))
	if fromOld.AppliedIndex() != snapshotV1Index {
		t.Fatalf("snapshot-v1 restored at index %d, want %d", fromOld.AppliedIndex(), snapshotV1Index)
	}
	replay(t, fromOld, logAfter(v1, snapshotV1Index))
	replay(t, fromOld, v2)

	checkInvariants(t, fresh)
	checkInvariants(t, fromOld)
	a, b := snapshotBytes(t, fresh), snapshotBytes(t, fromOld)
	if !bytes.Equal(a, b) {
		t.Fatalf("replayed from scratch and from the format 1 snapshot differ\nfresh %x\nold   %x", a, b)
	}

	// The history did what it says: the state is not trivially empty.
	end := v2[len(v2)-1].Index
	if fresh.AppliedIndex() != end {
		t.Errorf("applied index %d, want %d", fresh.AppliedIndex(), end)
	}
	at := t0 + 47*minute
	for _, c := range []struct {
		token string
		want  Status
	}{
		{accessToken("s-after", 0), StatusActive},
		{refreshToken("s-grace", 1), StatusActive},
		{refreshToken("s-grace", 9), StatusActive},
		{accessToken("s-extra", 2), StatusRevoked}, // a refresh token reuse under format 1
		{accessToken("s-late", 1), StatusRevoked},  // alice logged out everywhere
	} {
		if _, _, st := fromOld.LookupToken(events.HashToken(c.token), at); st != c.want {
			t.Errorf("LookupToken(%s) = %s, want %s", c.token, st, c.want)
		}
	}
	if _, ok := fromOld.User("erin"); !ok {
		t.Error("user erin missing")
	}
}

// writeLogV2 writes log-v2.golden: the current version's entries that follow
// log-v1.golden, checked against a state machine as they are written.
func writeLogV2(t *testing.T, v1 []*raft.Log) {
	f := New(Config{})
	replay(t, f, v1)
	index := v1[len(v1)-1].Index
	var out strings.Builder
	req := 0
	env := func(minutes float64, ev events.Event) []byte {
		req++
		data, err := events.Encode(events.Envelope{Time: t0 + int64(minutes*float64(minute)),
			RequestID: fmt.Sprintf("v2-req-%d", req), Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	write := func(kind string, data []byte, wantErr error) {
		t.Helper()
		index++
		res := f.ApplyBatch([]*raft.Log{{Type: raft.LogCommand, Index: index, Term: 2, Data: data}})[0]
		var results []*Result
		switch r := res.(type) {
		case *Result:
			results = []*Result{r}
		case BatchResult:
			results = r
		}
		for _, r := range results {
			if !errors.Is(r.Err, wantErr) || (wantErr == nil && r.Err != nil) {
				t.Fatalf("entry %d (%s): %v, want %v", index, kind, r.Err, wantErr)
			}
		}
		fmt.Fprintf(&out, "%d %s %s\n", index, kind, hex.EncodeToString(data))
	}
	one := func(minutes float64, ev events.Event) { write(ev.EventType().String(), env(minutes, ev), nil) }
	batch := func(entries ...[]byte) {
		data, err := events.EncodeBatch(entries)
		if err != nil {
			t.Fatal(err)
		}
		write("Batch", data, nil)
	}

	p := DefaultPolicy()
	p.IdleTimeout = 30 * time.Minute
	p.RefreshReuseGrace = time.Minute
	p.AppMaxSessions = []AppLimit{{App: "mobile", MaxSessions: 3}}
	one(32, &events.PolicySet{Policy: p})
	one(32, &events.UserCredentialsSet{UserID: "erin", Email: "erin@example.com", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5"})
	one(32, &events.UserLimitSet{UserID: "frank", MaxSessions: 2})
	one(33, &events.LoginFailed{LoginID: "email:nobody@example.com"})
	one(33, &events.LoginFailed{LoginID: LoginByUser + "erin", UserID: "erin"})
	mobile := created("s-mobile", "frank")
	mobile.App = "mobile"
	batch(env(34, created("s-grace", "erin")), env(34, mobile),
		env(34, &events.SessionsTouched{Touches: []events.Touch{{SessionID: "s-late", At: t0 + 34*minute}}}))
	one(35, refreshed("s-grace", 1))
	sibling := refreshed("s-grace", 1)
	sibling.NewAccessHash, sibling.NewRefreshHash = ah("s-grace", 9), rh("s-grace", 9)
	one(35.3, sibling)
	batch(env(36, &events.SessionsTouched{Touches: []events.Touch{{SessionID: "s-grace", At: t0 + 36*minute}}}),
		env(36, refreshed("s-late", 1)))
	one(37, &events.UserUnlocked{UserID: "erin"})
	one(38, &events.SessionRevoked{SessionID: "s-mobile", Scope: events.RevokeWholeSession, Reason: events.ReasonLogout})
	one(39, &events.UserForceLoggedOut{UserID: "alice", Reason: events.ReasonPasswordChange})
	one(40, &events.UserDeleted{UserID: "frank"})
	one(45, &events.SessionsExpired{Until: t0 + 45*minute})
	one(46, created("s-after", "erin"))
	if err := os.WriteFile(goldenLogV2, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d entries)", goldenLogV2, req)
}
