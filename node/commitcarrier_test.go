package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/events"
)

// An idle leader sends its followers heartbeats and, each commit timeout, one
// empty append: not one every millisecond, as with the 1 ms commit timeout
// that used to carry commits to the followers.
func TestCarrier_IdleLeaderSendsNoStreamOfEmptyAppends(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	leader := nodes[0]
	const window = 2 * time.Second
	before := leader.carrier.appends.Load()
	<-time.After(window) // a measuring window, not a wait for a condition
	got := leader.carrier.appends.Load() - before
	// Two followers, one append each per commit timeout at most, doubled
	// for whatever the start left to do.
	if limit := 2 * 2 * uint64(window/commitTimeout); got > limit {
		t.Errorf("the idle leader sent %d appends in %s, want at most %d", got, window, limit)
	}
	t.Logf("%d appends in %s", got, window)
}

// A follower that forwards a write learns of its commit from the carrier
// at once, not from Raft's empty append a commit timeout later.
func TestCarrier_ForwardedWritesDoNotWaitForTheCommitTimeout(t *testing.T) {
	nodes, _ := startCluster(t, 3)
	follower := nodes[2]
	var took []time.Duration
	for i := range 15 {
		start := time.Now()
		if _, err := follower.CreateSession(ctx(t), CreateRequest{UserID: events.UserID(fmt.Sprintf("u%d", i)), App: "default",
			AuthMethod: events.AuthImpersonation}); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	if median := took[len(took)/2]; median >= commitTimeout/2 {
		t.Errorf("forwarded writes took %v (median %s): the follower waits for Raft's commit timeout (%s)", took, median, commitTimeout)
	}
	if nodes[0].carrier.carried.Load() == 0 {
		t.Error("the leader sent no carrier")
	}
}
