package clustertest

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// longRun reports whether SESSIOND_LONG asks for the long runs of the
// fault-injection checks.
func longRun() bool { return os.Getenv("SESSIOND_LONG") != "" }

// runSeeds are the seeds of a fault-injection check: one fresh seed, twenty
// in the long run, or the one SESSIOND_SEED names (a replay).
func runSeeds(t *testing.T) []uint64 {
	t.Helper()
	if s := os.Getenv("SESSIOND_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SESSIOND_SEED=%q: %v", s, err)
		}
		return []uint64{seed}
	}
	now := uint64(time.Now().UnixNano())
	if !longRun() {
		return []uint64{now}
	}
	seeds := make([]uint64, 20)
	for i := range seeds {
		seeds[i] = now + uint64(i)
	}
	return seeds
}
