package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
)

// formationLimit bounds the wait for a local cluster to elect a leader that
// every node knows (also bounded by --timeout).
const formationLimit = time.Minute

// localCluster is a cluster of real nodes in this process, every address
// on 127.0.0.1, data in a temporary directory removed by close.
type localCluster struct {
	dir    string
	apiKey string
	urls   []string
	nodes  []*localNode
}

type localNode struct {
	id     string
	region string // as configured
	voter  bool   // started as a voter
	node   *node.Node
	api    *httpapi.Server
}

// startLocal starts size nodes at once with bootstrap-expect size, each
// joining the others through gossip, with the production timings of
// node.Default, and waits until they are ready with one leader.
func startLocal(ctx context.Context, size int, log *slog.Logger) (*localCluster, error) {
	return startLocalWith(ctx, size, log, nil)
}

// startLocalWith is startLocal with each node's and its API's configuration
// passed through adjust (when set) just before the node starts.
func startLocalWith(ctx context.Context, size int, log *slog.Logger, adjust func(i int, cfg *node.Config, api *httpapi.Config)) (_ *localCluster, err error) {
	dir, err := os.MkdirTemp("", "sessionbench-")
	if err != nil {
		return nil, err
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	lc := &localCluster{dir: dir, apiKey: "sb_" + base64.RawURLEncoding.EncodeToString(raw[:])}
	defer func() {
		if err != nil {
			_ = lc.close()
		}
	}()

	// HTTP listeners are held open from here on; gossip ports must be known
	// before start (every node names the others), so they are picked free.
	listeners := make([]net.Listener, size)
	gossip := make([]string, size)
	defer func() {
		for _, l := range listeners {
			if l != nil && err != nil {
				l.Close()
			}
		}
	}()
	for i := range size {
		if listeners[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if gossip[i], err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
		u := "http://" + listeners[i].Addr().String()
		if !isLoopbackURL(u) {
			return nil, fmt.Errorf("local node address %s is not loopback", u)
		}
		lc.urls = append(lc.urls, u)
	}

	nodes := make([]*localNode, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() {
			cfg := node.Default() // production timings
			cfg.NodeID = fmt.Sprintf("node%d", i+1)
			cfg.DataDir = filepath.Join(dir, cfg.NodeID)
			cfg.RaftAddr = "127.0.0.1:0"
			cfg.HTTPAddr = listeners[i].Addr().String()
			cfg.Logger = log.With("node", cfg.NodeID)
			if size > 1 {
				cfg.BootstrapSelf = false
				cfg.BootstrapExpect = size
				cfg.GossipAddr = gossip[i]
				for j, g := range gossip {
					if j != i {
						cfg.Join = append(cfg.Join, g)
					}
				}
			}
			apiCfg := httpapi.Default()
			apiCfg.APIKeys = []string{lc.apiKey}
			apiCfg.Logger = cfg.Logger
			if adjust != nil {
				adjust(i, &cfg, &apiCfg)
			}
			n, err := node.New(cfg)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", cfg.NodeID, err)
				return
			}
			apiCfg.Backend = n
			api, err := httpapi.New(apiCfg)
			if err != nil {
				n.Close()
				errs[i] = fmt.Errorf("%s: %w", cfg.NodeID, err)
				return
			}
			go func() { _ = api.Serve(listeners[i]) }()
			nodes[i] = &localNode{id: cfg.NodeID, region: cfg.Region, voter: cfg.Voter, node: n, api: api}
		})
	}
	wg.Wait()
	for _, ln := range nodes {
		if ln != nil {
			lc.nodes = append(lc.nodes, ln)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return lc, lc.waitReady(ctx)
}

// waitReady polls until the cluster is ready: without regions, every node
// ready, exactly one leading and every node naming it; with regions, what
// groupsReady says.
func (lc *localCluster) waitReady(ctx context.Context) error {
	if lc.regional() {
		return waitFor(ctx, formationLimit, "every group led and every node fresh in each", lc.groupsReady)
	}
	return waitFor(ctx, formationLimit, "the cluster to become ready with one leader", lc.ready)
}

// waitFor polls cond every 20 ms until it holds, for at most limit (and
// ctx); what says what was awaited when it did not come.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited for %s: %w", what, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

func (lc *localCluster) ready() bool {
	leaders, leaderID := 0, ""
	for _, ln := range lc.nodes {
		if !ln.node.Ready() {
			return false
		}
		if ln.node.IsLeader() {
			leaders++
			leaderID = ln.id
		}
	}
	if leaders != 1 {
		return false
	}
	for _, ln := range lc.nodes {
		if _, id := ln.node.Leader(); id != leaderID {
			return false
		}
	}
	return true
}

// regional reports whether the nodes run a group per region (node.Config
// Regions) rather than one group.
func (lc *localCluster) regional() bool {
	return len(lc.nodes) > 0 && len(lc.nodes[0].node.Groups()) > 1
}

// The global group of a cluster with regions: its name in the
// cluster's status, and the most voters it has (with fewer voter nodes,
// every one votes in it).
const (
	globalGroup     = "global"
	maxGlobalVoters = 5
)

// groupsReady reports, for a cluster with regions, whether every node is
// ready in its own region's group and, in every group it hosts, knows the
// same leader as every other node, counts every node in the group's
// configuration, and vouches from its copy; and whether the global group
// has all the voters it will pick (as many as the cluster has voter nodes,
// up to maxGlobalVoters), so that which region holds its majority is
// settled before anything is measured.
func (lc *localCluster) groupsReady() bool {
	voters := 0
	for _, ln := range lc.nodes {
		if ln.voter {
			voters++
		}
	}
	leaders := map[string]string{}
	for _, ln := range lc.nodes {
		if !ln.node.Ready() {
			return false
		}
		st := ln.node.ClusterStatus()
		if len(st.Groups) < 2 {
			return false
		}
		for _, g := range st.Groups {
			if g.LeaderID == "" || !g.Fresh || len(g.Voters)+len(g.Replicas) != len(lc.nodes) {
				return false
			}
			if l, ok := leaders[g.Name]; ok && l != g.LeaderID {
				return false
			}
			leaders[g.Name] = g.LeaderID
			if g.Name == globalGroup && len(g.Voters) != min(voters, maxGlobalVoters) {
				return false
			}
		}
	}
	return true
}

// close stops the leader first (it hands leadership to a live follower
// rather than to one already stopped), then the others together, and
// removes the data. It gives up waiting after shutdownGrace; the directory
// is removed either way.
func (lc *localCluster) close() error {
	done := make(chan error, 1)
	go func() {
		var errs []error
		stop := func(ln *localNode) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return errors.Join(ln.api.Shutdown(ctx), ln.node.Close())
		}
		var leader *localNode
		var rest []*localNode
		for _, ln := range lc.nodes {
			if leader == nil && ln.node.IsLeader() {
				leader = ln
			} else {
				rest = append(rest, ln)
			}
		}
		if leader != nil {
			errs = append(errs, stop(leader))
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ln := range rest {
			wg.Go(func() {
				err := stop(ln)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		done <- errors.Join(errs...)
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(shutdownGrace):
		err = fmt.Errorf("nodes still stopping after %s", shutdownGrace)
	}
	return errors.Join(err, os.RemoveAll(lc.dir))
}

// freeLoopbackAddr is a 127.0.0.1 port that was free a moment ago (for
// gossip, TCP and UDP: memberlist binds both).
func freeLoopbackAddr() (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue // the UDP port is taken: try another
		}
		u.Close()
		return addr, nil
	}
	return "", errors.New("no free loopback port for gossip")
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
