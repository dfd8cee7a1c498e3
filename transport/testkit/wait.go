package testkit

import (
	"testing"
	"time"
)

// Backoff bounds of Wait: the first poll follows at once, the next ones
// after a pause that doubles from minPoll up to maxPoll.
const (
	minPoll = time.Millisecond
	maxPoll = 20 * time.Millisecond
)

// Wait polls cond until it holds, and reports whether it did before limit
// passed. It is for the places that carry on either way; Eventually fails
// the test instead.
func Wait(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	pause := minPoll
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, maxPoll)
	}
	return true
}

// Eventually polls cond until it holds, and fails the test, naming what it
// waited for, when limit passes first.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Wait(limit, cond) {
		t.Fatalf("timed out after %s waiting for %s", limit, what)
	}
}
