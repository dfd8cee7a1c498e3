package main

// The CLI against a cluster of two regions: the groups in cluster status,
// users' home regions, and group-qualified --min-index.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/httpapi/client"
	"github.com/sessiond/sessiond/httpapi/clustertest"
)

func TestSessionctl_RegionsShowGroupsAndHomeUsers(t *testing.T) {
	// node0 runs in eu, node1 in us; SESSIOND_ADDR names node0 first, so
	// commands go there unless --addr says otherwise.
	h := startCLI(t, clustertest.Options{Size: 2, Regions: []string{"eu", "us"}})
	eu, us := h.cl.Nodes[0], h.cl.Nodes[1]

	t.Run("users set --region homes the user, users get shows it", func(t *testing.T) {
		h := h.with(t)
		if r := h.runWith(nil, "correct horse\n", "users", "set", "alice", "--region", "us", "--password-stdin"); r.code != 0 || r.stdout != "user alice set\n" {
			t.Fatalf("users set --region us: %+v", r)
		}
		if u := okJSON[client.User](h, "users", "get", "alice"); u.Region != "us" || !u.HasPassword {
			t.Errorf("users get -o json: %+v", u)
		}
		out := h.ok("users", "get", "alice")
		if !hasRow(out, "REGION", "us") {
			t.Errorf("users get table lacks REGION us:\n%s", out)
		}
		// --region alone is enough, for a user that exists.
		if out := h.ok("users", "set", "alice", "--region", "us"); out != "user alice set\n" {
			t.Errorf("users set --region alone printed %q", out)
		}
		r := h.runWith(nil, "correct horse\n", "users", "set", "bob", "--region", "mars", "--password-stdin")
		if r.code != exitError || !strings.HasPrefix(r.stderr, "sessionctl: bad_request: ") {
			t.Errorf("a region the cluster lacks: %+v", r)
		}
	})

	t.Run("cluster status lists the groups", func(t *testing.T) {
		h := h.with(t)
		st := okJSON[client.ClusterStatus](h, "cluster", "status")
		if st.NodeID != eu.ID || st.Region != "eu" || len(st.Groups) != 3 {
			t.Fatalf("cluster status -o json: %+v", st)
		}
		out := h.ok("cluster", "status")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 9 || !strings.HasPrefix(lines[0], "answered by "+eu.ID+" (region eu); ") ||
			!strings.HasPrefix(lines[1], "NODE") || lines[4] != "" || !strings.HasPrefix(lines[5], "GROUP") {
			t.Fatalf("status table:\n%s", out)
		}
		// Each member's row is about its own region's group, where each
		// node is the only voter, hence the leader.
		for _, line := range lines[2:4] {
			f := strings.Fields(line)
			// NODE REGION VOTER LEADER STATE APPLIED HEALTH HTTP
			if len(f) != 8 || f[2] != "yes" || f[3] != "*" || f[4] != "Leader" || f[6] != "alive" {
				t.Errorf("member row %q", line)
			}
		}
		if f := strings.Fields(lines[5]); strings.Join(f, " ") != "GROUP LEADER STATE APPLIED COMMIT FRESH VOTERS REPLICAS" {
			t.Errorf("groups header %q", lines[5])
		}
		want := map[string]struct{ voters, replicas string }{
			"eu": {eu.ID, us.ID},
			"us": {us.ID, eu.ID},
		}
		seen := map[string]bool{}
		for _, line := range lines[6:] {
			f := strings.Fields(line)
			if len(f) != 8 {
				t.Fatalf("group row %q", line)
			}
			name, leader, state, applied, commit, fresh, voters, replicas := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
			seen[name] = true
			a, aerr := strconv.ParseUint(applied, 10, 64)
			c, cerr := strconv.ParseUint(commit, 10, 64)
			if leader == "-" || (state != "Leader" && state != "Follower") || aerr != nil || cerr != nil || a == 0 || c < a ||
				(fresh != "yes" && fresh != "no") {
				t.Errorf("group row %q", line)
			}
			if w, ok := want[name]; ok && (voters != w.voters || replicas != w.replicas || leader != w.voters) {
				t.Errorf("group row %q: want leader and voter %s, replica %s", line, w.voters, w.replicas)
			}
			if name == "eu" && (state != "Leader" || fresh != "yes") {
				t.Errorf("eu's only voter answered: row %q", line)
			}
		}
		if len(seen) != 3 || !seen["eu"] || !seen["us"] || !seen["global"] {
			t.Errorf("groups %v, want eu, us and global", seen)
		}
	})

	t.Run("--min-index takes group-qualified indexes", func(t *testing.T) {
		h := h.with(t)
		tok := okJSON[client.Tokens](h, "sessions", "create", "--user", "alice")
		if !strings.HasSuffix(tok.SessionID, ".us") || tok.Index == 0 {
			t.Fatalf("alice's session through eu: %+v; want it homed in us", tok)
		}
		at := fmt.Sprintf("us:%d", tok.Index)
		for _, m := range []*clustertest.Member{us, eu} {
			for _, minIndex := range []string{at, "eu:1," + at + ",global:1"} {
				s := okJSON[client.Session](h, "--addr", m.URL, "sessions", "get", "--min-index", minIndex, "--", tok.SessionID)
				if s.Status != client.StatusActive {
					t.Errorf("%s, --min-index %s: %+v", m.ID, minIndex, s)
				}
			}
		}
		for _, bad := range []string{"us:x", "us:1,us:2", ":1", "us:1,"} {
			h.fails(exitUsage, "usage", "sessions", "get", "--min-index", bad, "--", tok.SessionID)
		}
		h.fails(exitError, "bad_request", "sessions", "get", "--min-index", "mars:1", "--", tok.SessionID)
	})
}

// hasRow reports whether a fields table has a row of exactly these fields.
func hasRow(table string, fields ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
