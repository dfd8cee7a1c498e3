package node

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport/testkit"
)

// A data dir written by the single-group version (one Raft group for the
// whole cluster, files at the data dir's top level) is kept frozen in
// testdata: every later version must start on it and keep every session,
// user and the policy. It holds a snapshot and log entries after it, so a
// start restores the one and replays the other.
//
// Only the version that wrote it can write it again:
//
//	go test ./node -run TestUpgrade_SingleGroupDataDirStartsWithEverything -write-datadir
//
// and that is for adding a new frozen data dir of a new version, never for
// replacing this one.
var writeDataDir = flag.Bool("write-datadir", false, "write testdata/datadir-single-group.tar.gz anew (only the version it records)")

const (
	frozenDataDir  = "testdata/datadir-single-group.tar.gz"
	frozenManifest = "testdata/datadir-single-group.json"
	frozenNodeID   = "n1"
)

// frozenDir says what the frozen data dir holds. Its tokens open only test
// sessions in this file's data.
type frozenDir struct {
	Written string `json:"written"` // the version that wrote it
	Clock   string `json:"clock"`   // RFC 3339: the node's clock when it was written
	Policy  struct {
		AccessTTL          string `json:"access_ttl"`
		MaxSessionsPerUser int    `json:"max_sessions_per_user"`
	} `json:"policy"`
	Users []struct {
		ID       string `json:"id"`
		Email    string `json:"email"`
		Password string `json:"password"`
	} `json:"users"`
	Active []frozenSession `json:"active"` // validate after the start
	Ended  []frozenSession `json:"ended"`  // revoked: refused after the start
}

type frozenSession struct {
	SessionID   string `json:"session_id"`
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	// BeforeSnapshot: written before the snapshot (restored from it), else
	// replayed from the log after it.
	BeforeSnapshot bool `json:"before_snapshot"`
}

func TestUpgrade_SingleGroupDataDirStartsWithEverything(t *testing.T) {
	if *writeDataDir {
		writeFrozenDataDir(t)
	}
	raw, err := os.ReadFile(frozenManifest)
	if err != nil {
		t.Fatal(err)
	}
	var want frozenDir
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, want.Clock)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untarGz(t, frozenDataDir, dir)

	cfg := testConfig(t, dir)
	cfg.NodeID = frozenNodeID
	clock := testkit.NewClock(at.Add(time.Minute)) // its sessions still live
	cfg.Clock = clock.Now
	n := startNode(t, cfg)
	defer n.Close()

	p := n.Policy()
	if got := p.AccessTTL.String(); got != want.Policy.AccessTTL || p.MaxSessionsPerUser != want.Policy.MaxSessionsPerUser {
		t.Errorf("policy: access_ttl %s, max_sessions_per_user %d; want %s, %d", got, p.MaxSessionsPerUser, want.Policy.AccessTTL, want.Policy.MaxSessionsPerUser)
	}
	for _, u := range want.Users {
		info, ok := n.User(events.UserID(u.ID))
		if !ok || info.User.Email != u.Email {
			t.Errorf("user %s: found %v, email %q; want %q", u.ID, ok, info.User.Email, u.Email)
			continue
		}
		if _, err := n.Login(ctx(t), LoginRequest{UserID: events.UserID(u.ID), Password: u.Password}); err != nil {
			t.Errorf("user %s cannot log in with its password: %v", u.ID, err)
		}
	}
	sawRestored, sawReplayed := false, false
	for _, s := range want.Active {
		got, err := n.Validate(ctx(t), s.AccessToken)
		if err != nil || string(got.ID()) != s.SessionID || string(got.UserID) != s.UserID {
			t.Errorf("session %s (before snapshot %v): %v, id %s user %s", s.SessionID, s.BeforeSnapshot, err, got.ID(), got.UserID)
		}
		sawRestored = sawRestored || s.BeforeSnapshot
		sawReplayed = sawReplayed || !s.BeforeSnapshot
	}
	for _, s := range want.Ended {
		if _, err := n.Validate(ctx(t), s.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
			t.Errorf("revoked session %s: Validate = %v, want it refused", s.SessionID, err)
		}
	}
	if !sawRestored || !sawReplayed || len(want.Ended) == 0 {
		t.Errorf("the frozen data dir lacks a kind of state: restored %v, replayed %v, revoked %d", sawRestored, sawReplayed, len(want.Ended))
	}
}

// writeFrozenDataDir runs a node of this version on a fixed clock and
// records what it wrote.
func writeFrozenDataDir(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.NodeID = frozenNodeID
	clock := testkit.NewClock(at)
	cfg.Clock = clock.Now
	n := startNode(t, cfg)
	var m frozenDir
	m.Written = "the single-group version (before regions), 2026-12-07"
	m.Clock = at.Format(time.RFC3339Nano)

	p := n.Policy()
	p.AccessTTL = 20 * time.Minute
	p.AbsoluteTTL = 365 * 24 * time.Hour
	p.MaxSessionsPerUser = 50
	if _, err := n.SetPolicy(ctx(t), p); err != nil {
		t.Fatal(err)
	}
	m.Policy.AccessTTL = p.AccessTTL.String()
	m.Policy.MaxSessionsPerUser = p.MaxSessionsPerUser
	for _, id := range []string{"ada", "grace"} {
		pw := "frozen password of " + id
		if _, _, err := n.SetUser(ctx(t), SetUserRequest{UserID: events.UserID(id), Email: id + "@example.com", Password: pw}); err != nil {
			t.Fatal(err)
		}
		m.Users = append(m.Users, struct {
			ID       string `json:"id"`
			Email    string `json:"email"`
			Password string `json:"password"`
		}{id, id + "@example.com", pw})
	}
	create := func(user string, before bool) frozenSession {
		is, err := n.CreateSession(ctx(t), CreateRequest{UserID: events.UserID(user), AuthMethod: events.AuthImpersonation})
		if err != nil {
			t.Fatal(err)
		}
		return frozenSession{SessionID: string(is.Session.ID()), UserID: user, AccessToken: is.AccessToken, BeforeSnapshot: before}
	}
	for _, before := range []bool{true, false} {
		for _, user := range []string{"ada", "grace", "linus"} {
			m.Active = append(m.Active, create(user, before))
		}
		ended := create("ada", before)
		if _, err := n.RevokeSession(ctx(t), events.SessionID(ended.SessionID), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
			t.Fatal(err)
		}
		m.Ended = append(m.Ended, ended)
		if before {
			if err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(time.Second)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	tarGz(t, dir, frozenDataDir)
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(frozenManifest, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tarGz(t *testing.T, dir, to string) {
	t.Helper()
	f, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
}

func untarGz(t *testing.T, from, dir string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("unsafe path %q in %s", hdr.Name, from)
		}
		path := filepath.Join(dir, name)
		if strings.HasSuffix(hdr.Name, "/") {
			if err := os.MkdirAll(path, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
