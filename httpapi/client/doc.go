// Package client is a Go client for sessiond's HTTP API (docs/api.md):
// sessions, logins, token exchange, refresh, validation, logout, forward auth,
// introspection and revocation, users, policy, cluster status, the event
// stream, the self-service /v1/me routes and the health probes.
//
// # Nodes and failover
//
// New takes the HTTP addresses of one or more nodes. Every node serves the
// whole API (writes sent to a follower are forwarded to the leader), so the
// client sends each request to the node it used last and moves on to the
// next address only when that node cannot be reached or answers 503; it then
// sticks to whichever answers.
//
// # Retries
//
// A request is retried (WithRetry sets how often and how soon) when it is
// safe to repeat:
//
//   - A request that never left (the connection could not be opened) is
//     tried on the next address, whatever it is.
//   - Reads (GET, introspection) are retried on 503, 429, 502, 504 and on a
//     connection that broke after the request was sent.
//   - Writes are retried in the same cases by default. Each call sends an
//     Idempotency-Key, the same on every attempt, which the server uses as
//     the write's request id: the write applies at most once.
//
// The server answers 503 to a write when the write did not apply or when
// its outcome is unknown (the leader was lost, or the commit took longer
// than the server's write timeout: the entry may still commit). A repeated
// revocation then answers as the first attempt did. A repeated session
// create, login, token exchange or refresh whose first attempt did apply
// answers 409 conflict ("already applied"): the tokens it issued went to
// the lost answer and are kept nowhere, so the call fails rather than make
// a second session or count as refresh-token reuse. The server remembers
// the last 16,384 writes' keys. RetryNoWrites retries no write that may
// have reached a server.
//
// Between rounds over the addresses the client waits with exponential
// backoff and jitter, and at least as long as the server's Retry-After. It
// does not start a wait that would end after the context's deadline.
//
// # Read-your-writes
//
// The client remembers the highest X-Sessiond-Index any answer carried
// (LastIndex) and sends it as X-Sessiond-Min-Index on reads, so a read on
// any node sees the client's own earlier writes: the node waits (up to 2s)
// until it has applied that index, or answers 503 and the read is retried.
// WithReadYourWrites(false) turns this off; WithMinIndex seeds the index
// (for example with an index printed by another process). LeaderRead marks
// a context's reads as linearizable (?consistency=leader).
//
// In a cluster with regions each region has its own Raft group, plus a
// global one, and an index names its group ("eu:1234"). The client then
// remembers the highest index of each group (LastIndexes) and sends them
// all, sorted by group name ("eu:1234,global:17,us:99"): the node waits
// until each group has applied its index. WithMinIndexes seeds such a
// list. With a single region the header is one plain number, as it always
// was; a cluster with regions refuses a plain number, so once an answer has
// named a group a plain index (from WithMinIndex) is no longer sent. The
// index a write returns (Tokens.Index, Logout's result, ...) is the number
// alone, in the log of the group that applied it; LastIndexes has it with
// its group.
//
// # Errors
//
// An error answer is an *Error holding the HTTP status, the API's code, the
// message, Retry-After and, for session_limit_exceeded, the user's active
// sessions. errors.Is matches it against the sentinels ErrUnauthenticated,
// ErrNotFound, ErrSessionLimit, ErrLocked, ErrUnavailable and the others, and
// predicates such as IsUnauthenticated wrap that.
//
// # Events
//
// Events streams GET /v1/events as an iterator. A dropped connection is
// reopened with Last-Event-ID after a bounded backoff, so no event is lost
// or repeated; when the node no longer holds the events asked for the
// iterator ends with an error matching ErrGone.
package client
