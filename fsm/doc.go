// Package fsm is sessiond's deterministic state machine: the sessions, the
// indexes that find them by id, by token hash and by user, the replicated
// policy, the directory of a multi-region deployment's global group (each
// user's home region, each email's user), and the table of recent request
// ids that makes retried writes apply once. Every Raft group runs it: a
// region group never receives the directory's events, the global group
// receives only those and PolicySet.
//
// It knows only package events. It never reads a clock, randomness, the
// environment or map order: every "now" comes from the event being applied
// (writes) or from the caller (reads). Two FSMs fed the same log hold the
// same state and write byte-identical snapshots.
//
// Concurrency: Raft applies entries on one goroutine (ApplyBatch, Restore,
// Snapshot); reads come from any goroutine and take a read lock. A *Session
// stored in the state is never modified after it is stored; a change
// replaces it with a modified copy. That lets Snapshot capture the set of
// session pointers cheaply and Persist stream them while applies go on.
//
// Business failures (an unknown session, a reused refresh token) come back
// as values in Result and leave the state untouched, except where the rule
// itself changes state (refresh-token reuse revokes the session). An entry
// that cannot be decoded is an invariant break: the FSM panics rather than
// let nodes diverge.
package fsm
