// Package node runs one sessiond node: hashicorp/raft over a raft-boltdb log
// and stable store with file snapshots, the fsm package's state machine, and
// the session operations built on them.
//
// A write is minted here (session ids, tokens and request ids from
// crypto/rand; only token hashes go into the event), stamped with the
// leader's never-decreasing time, proposed through Raft and answered with the
// state machine's result and the Raft index. A write whose outcome is unknown
// (a timeout, a lost leadership) is retried with the same request id, which
// the state machine applies at most once. Reads are answered from the local
// state machine.
package node
