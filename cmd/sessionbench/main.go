// Command sessionbench is a load generator for sessiond in the spirit of
// wrk. It runs up to three phases, each bounded by a request count and a
// duration, whichever comes first:
//
//   - create: POST /v1/sessions round-robin over the nodes (most requests go
//     through followers and are forwarded to the leader; --create-via leader
//     or followers isolates the cost of forwarding);
//   - validate-follower: GET /v1/session with the tokens just issued, against
//     one follower;
//   - ceiling: the same requests against a bare net/http handler in this
//     process that answers with the bytes the follower answered, so that
//     validate-follower/ceiling is sessiond's cost over the HTTP stack,
//     measured in the same run on the same machine.
//
// The target is an existing cluster (--addrs, --api-key or --api-key-file)
// or, by default, a cluster started in this process on 127.0.0.1 (--local N)
// with real Raft, gossip and HTTP and sessiond's production timings. The
// whole run stops after --timeout at the latest.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCommand(hardExit)
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

// hardExit ends the process when the run has not wound down within its
// grace period after --timeout (a stuck shutdown must not keep it alive).
func hardExit() {
	fmt.Fprintln(os.Stderr, "sessionbench: still running after --timeout and its grace period; exiting")
	os.Exit(2)
}
