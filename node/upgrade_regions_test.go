package node

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/transport/testkit"
)

// The frozen single-region data dir, started as the eu node of a cluster
// with regions eu and us: its one group becomes eu's, its users are listed
// in the directory (homed in eu, emails claimed), its policy becomes the
// global one, and every session, untagged token and password still works,
// through a node of either region.
// startUpgraded starts the frozen single-region data dir as node n1 of
// region eu, and a new node u1 of region us; hold keeps the eu node from
// listing the users in the directory.
func startUpgraded(t *testing.T, hold bool) (eu, us *Node, want frozenDir, regional func(id, dir, region, gossip string, join ...string) Config, euDir string) {
	raw, err := os.ReadFile(frozenManifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, want.Clock)
	if err != nil {
		t.Fatal(err)
	}
	clock := testkit.NewClock(at.Add(time.Minute)) // its sessions still live
	euDir = t.TempDir()
	untarGz(t, frozenDataDir, euDir)
	euGossip := testkit.FreeAddr(t)
	regional = func(id, dir, region, gossip string, join ...string) Config {
		cfg := testConfig(t, dir)
		cfg.NodeID = id
		cfg.Clock = clock.Now
		cfg.BootstrapSelf, cfg.BootstrapExpect = false, 1
		cfg.GossipAddr, cfg.Join = gossip, join
		cfg.ReconcileInterval = 100 * time.Millisecond
		cfg.Region, cfg.Regions = region, []string{"eu", "us"}
		cfg.holdImport = hold
		return cfg
	}
	eu, err = New(regional(frozenNodeID, euDir, "eu", euGossip))
	if err != nil {
		t.Fatalf("start the frozen data dir as eu: %v", err)
	}
	t.Cleanup(func() { eu.Close() })
	us, err = New(regional("u1", t.TempDir(), "us", testkit.FreeAddr(t), euGossip))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { us.Close() })
	return eu, us, want, regional, euDir
}

func TestUpgrade_SingleGroupDataDirBecomesARegion(t *testing.T) {
	eu, us, want, regional, euDir := startUpgraded(t, false)
	testkit.Eventually(t, 30*time.Second, "the users listed in the directory on both nodes", func() bool {
		for _, n := range []*Node{eu, us} {
			if region, done := n.global.fsm.Import(); region != "eu" || !done {
				return false
			}
		}
		return true
	})

	if st := us.ClusterStatus(); st.ImportRegion != "eu" || !st.ImportDone {
		t.Errorf("cluster status: import %q done %v, want eu, done", st.ImportRegion, st.ImportDone)
	}
	for _, n := range []*Node{eu, us} {
		p := n.Policy()
		if got := p.AccessTTL.String(); got != want.Policy.AccessTTL || p.MaxSessionsPerUser != want.Policy.MaxSessionsPerUser {
			t.Errorf("%s: global policy access_ttl %s, max %d; want the single-region one %s, %d", n.ID(), got, p.MaxSessionsPerUser, want.Policy.AccessTTL, want.Policy.MaxSessionsPerUser)
		}
	}
	for _, u := range want.Users {
		if home, ok := us.global.fsm.Home(events.UserID(u.ID)); !ok || home != "eu" {
			t.Errorf("user %s homed in %q, want eu", u.ID, home)
		}
		if owner, _ := us.global.fsm.EmailOwner(u.Email); string(owner) != u.ID {
			t.Errorf("email %s held by %q in the directory, want %s", u.Email, owner, u.ID)
		}
		is, err := us.Login(ctx(t), LoginRequest{Email: u.Email, Password: u.Password})
		if err != nil {
			t.Errorf("user %s cannot log in through us: %v", u.ID, err)
			continue
		}
		if !strings.HasSuffix(string(is.Session.ID()), ".eu") || is.Index.Group != "eu" {
			t.Errorf("user %s's login through us made session %s at %v, want its home eu", u.ID, is.Session.ID(), is.Index)
		}
	}
	for _, n := range []*Node{eu, us} {
		for _, s := range want.Active {
			got, err := n.Validate(ctx(t), s.AccessToken)
			if err != nil || string(got.ID()) != s.SessionID {
				t.Errorf("%s: untagged session %s: %v", n.ID(), s.SessionID, err)
			}
		}
		for _, s := range want.Ended {
			if _, err := n.Validate(ctx(t), s.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
				t.Errorf("%s: revoked untagged session %s: %v, want it refused", n.ID(), s.SessionID, err)
			}
		}
	}
	// linus had sessions only, no credentials: homed in eu all the same.
	is, err := us.CreateSession(ctx(t), CreateRequest{UserID: "linus", AuthMethod: events.AuthImpersonation})
	if err != nil || !strings.HasSuffix(string(is.Session.ID()), ".eu") {
		t.Fatalf("a session of linus through us: %v, %s; want it in eu", err, is.Session.ID())
	}
	if n := len(eu.UserSessions("linus")); n != 3 {
		t.Errorf("linus has %d sessions in eu, want his two old ones and the new one", n)
	}
	// An untagged session id is found and revoked in eu.
	old := want.Active[0]
	if _, err := us.RevokeSession(ctx(t), events.SessionID(old.SessionID), events.RevokeWholeSession, events.ReasonAdmin); err != nil {
		t.Fatalf("revoke untagged session %s through us: %v", old.SessionID, err)
	}
	if _, err := eu.Validate(ctx(t), old.AccessToken); !errors.Is(err, fsm.ErrUnauthenticated) {
		t.Errorf("revoked untagged session still validates on eu: %v", err)
	}
	// A new user is homed where it is written; the old users' emails stay
	// theirs.
	if _, _, err := us.SetUser(ctx(t), SetUserRequest{UserID: "mallory", Email: want.Users[0].Email, Password: "another long password"}); !errors.Is(err, fsm.ErrEmailInUse) {
		t.Errorf("a new user taking %s: %v, want ErrEmailInUse", want.Users[0].Email, err)
	}
	fresh, err := us.CreateSession(ctx(t), CreateRequest{UserID: "nina", AuthMethod: events.AuthImpersonation})
	if err != nil || !strings.HasSuffix(string(fresh.Session.ID()), ".us") {
		t.Errorf("a new user's session through us: %v, %s; want it in us", err, fresh.Session.ID())
	}

	// The data dir is eu's now: a start in another region is refused.
	if err := eu.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(regional(frozenNodeID, euDir, "us", testkit.FreeAddr(t))); err == nil || !strings.Contains(err.Error(), "--region eu") {
		t.Errorf("the upgraded data dir started in region us: %v, want a refusal naming eu", err)
	}
}

// Until the users are listed in the directory, a node finds a user the
// directory does not list in the group the single-region data became:
// logins and writes reach it there, its email stays its own, untagged
// tokens validate, and the policy cannot change (the global one is about to
// become that region's).
func TestUpgrade_BeforeTheUsersAreListed(t *testing.T) {
	eu, us, want, _, _ := startUpgraded(t, true)
	testkit.Eventually(t, 30*time.Second, "the global group led and known on both nodes", func() bool {
		for _, n := range []*Node{eu, us} {
			if addr, _ := n.global.Leader(); addr == "" || n.legacyRegion() != "eu" {
				return false
			}
		}
		return true
	})
	if region, _ := us.global.fsm.Import(); region != "" {
		t.Fatalf("the import began (%q) though it is held", region)
	}
	u := want.Users[0]
	is, err := us.Login(ctx(t), LoginRequest{Email: u.Email, Password: u.Password})
	if err != nil || is.Index.Group != "eu" {
		t.Fatalf("%s logs in through us before the import: %v at %v, want a session in eu", u.ID, err, is.Index)
	}
	if home := us.HomeRegion(events.UserID(u.ID)); home != "eu" {
		t.Errorf("%s's region shown as %q, want eu", u.ID, home)
	}
	if _, _, err := us.SetUser(ctx(t), SetUserRequest{UserID: "mallory", Email: u.Email, Password: "another long password"}); !errors.Is(err, fsm.ErrEmailInUse) {
		t.Errorf("a new user taking %s before the import: %v, want ErrEmailInUse", u.Email, err)
	}
	for _, s := range want.Active {
		if _, err := us.Validate(ctx(t), s.AccessToken); err != nil {
			t.Errorf("untagged session %s on us before the import: %v", s.SessionID, err)
		}
	}
	if _, err := us.SetPolicy(ctx(t), fsm.DefaultPolicy()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a policy change before the import: %v, want ErrUnavailable", err)
	}
	if _, _, err := us.SetUser(ctx(t), SetUserRequest{UserID: events.UserID(u.ID), Region: "us"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("moving %s before the import: %v, want ErrUnavailable", u.ID, err)
	}
	if _, _, moving := eu.FSM().MovedTo(events.UserID(u.ID)); moving {
		t.Errorf("%s was frozen by a move refused before the import", u.ID)
	}
	if p := eu.FSM().Policy(); p.AccessTTL.String() != want.Policy.AccessTTL {
		t.Errorf("eu's own policy was replaced before the import: access %s", p.AccessTTL)
	}
	if home, ok := us.global.fsm.Home(events.UserID(u.ID)); ok {
		t.Errorf("%s was homed in %q by a write before the import", u.ID, home)
	}
}
