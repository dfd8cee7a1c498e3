package client_test

// Round trips against a real cluster of two regions: group-qualified
// indexes, read-your-writes across regions, users' home regions and the
// cluster's groups.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/httpapi/clustertest"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
)

func TestRegions_ReadYourWritesAcrossGroupsOnARealCluster(t *testing.T) {
	t.Parallel()
	// node0 runs in eu, node1 in us; each votes in its region's group and
	// replicates the other's.
	cl := clustertest.Start(t, clustertest.Options{Size: 2, Regions: []string{"eu", "us"}, Tweak: func(i int, cfg *node.Config) {
		cfg.Passwords = password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	}})
	eu, us := cl.Nodes[0], cl.Nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.New([]string{eu.URL}, client.WithAPIKey(clustertest.APIKey), client.WithRetry(2, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := c.SetUser(ctx, "alice", client.SetUserRequest{Password: "correct horse", Region: "us"}); err != nil {
		t.Fatalf("set alice homed in us through eu: %v", err)
	}
	if _, err := c.SetUser(ctx, "bob", client.SetUserRequest{Password: "correct horse", Region: "mars"}); !client.IsBadRequest(err) {
		t.Errorf("a region the cluster lacks: %v, want bad_request", err)
	}
	if c.LastIndex() != 0 {
		t.Errorf("LastIndex %d: every index names its group here", c.LastIndex())
	}
	u, err := c.User(ctx, "alice")
	if err != nil || u.Region != "us" {
		t.Fatalf("user %+v, %v; want region us", u, err)
	}

	tok, err := c.CreateSession(ctx, client.CreateSessionRequest{UserID: "alice"})
	if err != nil {
		t.Fatalf("create alice's session through eu: %v", err)
	}
	want := client.Index{Group: "us", N: tok.Index}
	if !slices.Contains(c.LastIndexes(), want) {
		t.Fatalf("LastIndexes %q lacks the write's %s", c.LastIndexes(), want)
	}
	t.Logf("indexes seen: %s", c.LastIndexes())
	// Every group the client saw goes back, and the server takes the list.
	if _, err := c.Session(ctx, tok.SessionID); err != nil {
		t.Fatalf("read through eu with min index %q: %v", c.LastIndexes(), err)
	}

	// Another process, given the indexes, reads the write on either node.
	for _, m := range []*clustertest.Member{us, eu} {
		r, err := client.New([]string{m.URL}, client.WithAPIKey(clustertest.APIKey), client.WithMinIndexes(c.LastIndexes().String()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.Session(ctx, tok.SessionID)
		if err != nil || s.Status != client.StatusActive {
			t.Errorf("%s: session %+v, %v", m.ID, s, err)
		}
	}

	// A plain index means nothing here: the first read says so, and once
	// an answer has named a group the plain index is no longer sent.
	plain, err := client.New([]string{us.URL}, client.WithAPIKey(clustertest.APIKey), client.WithMinIndex(tok.Index))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Session(ctx, tok.SessionID); !client.IsBadRequest(err) {
		t.Errorf("a plain min index in a cluster with regions: %v, want bad_request", err)
	}
	if _, err := plain.Session(ctx, tok.SessionID); err != nil {
		t.Errorf("the read after it: %v (sent %q)", err, plain.LastIndexes())
	}

	st, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range st.Groups {
		names = append(names, g.Name)
		if g.Leader.ID == "" || len(g.Voters) == 0 || g.AppliedIndex == 0 {
			t.Errorf("group %+v", g)
		}
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "eu,global,us" || st.Region != "eu" {
		t.Errorf("node %s in region %q lists groups %v; want eu, global, us", st.NodeID, st.Region, names)
	}
}
