package transport

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestValidGroupName(t *testing.T) {
	for _, name := range []string{"g", "region-eu", "global", "r.1", "0"} {
		if err := ValidGroupName(name); err != nil {
			t.Errorf("ValidGroupName(%q) = %v, want nil", name, err)
		}
	}
	long := string(make([]byte, maxGroupNameLen+1))
	for _, name := range []string{"", "EU", "eu west", "eu/west", "é", long} {
		if err := ValidGroupName(name); err == nil {
			t.Errorf("ValidGroupName(%q) = nil, want an error", name)
		}
	}
}

// acceptOn returns the next connection a stream layer accepts, or fails.
func acceptOn(t *testing.T, l raft.StreamLayer) net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			ch <- c
		}
	}()
	select {
	case c := <-ch:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("Accept returned no connection")
		return nil
	}
}

func attachGroup(t *testing.T, tr *Transport, group string) raft.StreamLayer {
	t.Helper()
	l, err := tr.RaftGroupLayer(group)
	if err != nil {
		t.Fatalf("RaftGroupLayer(%q): %v", group, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRaftGroupLayer_ConnectionsReachTheGroupTheyName(t *testing.T) {
	modes(t, func(t *testing.T, identity func(string) *MutualTLS) {
		srv := listen(t, Config{TLS: identity("server")})
		cli := listen(t, Config{TLS: identity("client")})
		srvEU, srvUS := attachGroup(t, srv, "eu"), attachGroup(t, srv, "us")
		cliEU, cliUS := attachGroup(t, cli, "eu"), attachGroup(t, cli, "us")

		// Dial us first: if Accept ignored the group, eu would take it.
		us, err := cliUS.Dial(srvAddr(srv), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer us.Close()
		eu, err := cliEU.Dial(srvAddr(srv), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer eu.Close()
		exchange(t, eu, acceptOn(t, srvEU))
		exchange(t, us, acceptOn(t, srvUS))
		if len(srv.raftConns) != 0 {
			t.Error("a named group's connection was queued for the default group")
		}
	})
}

func TestRaftGroupLayer_GroupNotHostedIsRefused(t *testing.T) {
	srv := listen(t, Config{})
	cli := listen(t, Config{})
	attachGroup(t, srv, "eu")
	c, err := attachGroup(t, cli, "us").Dial(srvAddr(srv), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClosed(t, c, 5*time.Second)
}

func TestRaftGroupLayer_CloseDetachesOnlyThatGroup(t *testing.T) {
	srv := listen(t, Config{})
	cli := listen(t, Config{})
	eu := attachGroup(t, srv, "eu")
	us := attachGroup(t, srv, "us")
	if err := eu.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := eu.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}
	c, err := attachGroup(t, cli, "us").Dial(srvAddr(srv), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the group still attached: %v", err)
	}
	defer c.Close()
	exchange(t, c, acceptOn(t, us))
	if _, err := cli.Dial(srv.Addr(), KindRaftGroup, time.Second); err == nil {
		t.Error("Dial with KindRaftGroup (no group named) succeeded")
	}
	// The name is free again once detached.
	attachGroup(t, srv, "eu")
	if _, err := srv.RaftGroupLayer("us"); err == nil {
		t.Error("a group attached twice at once")
	}
}

// Two Raft clusters over the same three transports, one per group: each
// replicates its own entries and never sees the other's.
func TestRaftGroupLayer_TwoRaftGroupsShareOnePort(t *testing.T) {
	trs := make([]*Transport, 3)
	for i := range trs {
		trs[i] = listen(t, Config{})
	}
	groups := map[string][]raftNode{}
	for _, group := range []string{"eu", "us"} {
		groups[group] = raftGroupOn(t, trs, func(tr *Transport) raft.StreamLayer { return attachGroup(t, tr, group) })
	}
	apply(t, groups["eu"], "eu-1")
	apply(t, groups["us"], "us-1")
	apply(t, groups["eu"], "eu-2")
	waitEntries(t, groups["eu"], "eu-1", "eu-2")
	waitEntries(t, groups["us"], "us-1")

	// One group's Raft shutting down leaves the transports to the other
	// (a second Shutdown at cleanup is a no-op).
	for _, n := range groups["eu"] {
		if err := n.raft.Shutdown().Error(); err != nil {
			t.Fatal(err)
		}
	}
	apply(t, groups["us"], "us-2")
	waitEntries(t, groups["us"], "us-1", "us-2")
}
