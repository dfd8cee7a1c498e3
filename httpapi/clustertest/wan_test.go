package clustertest

import (
	"net/http"
	"testing"
	"time"
)

// With a WAN delay between a node and the leader's site, a write through
// that node pays the round trip (it is forwarded to the leader and back),
// while the node keeps vouching from memory: its renewals cross the delay
// well inside max_stale, so every validation there is answered 200.
func TestWAN_FarNodeForwardsAcrossTheDelayAndKeepsVouching(t *testing.T) {
	const oneWay = 30 * time.Millisecond
	c := Start(t, Options{Size: 3, MaxStale: 2 * time.Second})
	leader := c.Leader()
	near, far := (leader+1)%3, (leader+2)%3
	regionOf := make([]int, 3)
	regionOf[far] = 1
	c.SetRegions(regionOf, 0, oneWay)
	if got := c.Faults.Delay(c.Nodes[far].raftAddr, c.Nodes[leader].raftAddr); got != oneWay {
		t.Fatalf("delay far→leader = %v, want %v", got, oneWay)
	}

	start := time.Now()
	tok, code := create(t, c.Nodes[far], "alice")
	took := time.Since(start)
	if code != http.StatusCreated {
		t.Fatalf("create through the far node: %d", code)
	}
	if took < 2*oneWay {
		t.Errorf("a create through the far node took %v, less than the %v round trip to the leader", took, 2*oneWay)
	}
	if _, code := create(t, c.Nodes[near], "bob"); code != http.StatusCreated {
		t.Fatalf("create through the near node: %d", code)
	}

	// The far node answered the create once it had applied it: the session
	// validates there at once, and keeps validating as renewals cross the
	// delay.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	for validations := range 150 { // 3 s, through several renewals
		if code := validate(t, c.Nodes[far], tok.AccessToken, ""); code != http.StatusOK {
			t.Fatalf("validation %d on the far node: %d, want 200", validations+1, code)
		}
		<-pace.C
	}
	c.SetRegions(regionOf, 0, 0)
	c.WaitConverged(20 * time.Second)
}
