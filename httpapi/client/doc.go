// Package client is a Go client for sessiond's HTTP API (SPEC §4): sessions,
// logins, token exchange, refresh, validation, logout, forward auth,
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
//   - Writes whose repetition leaves the same state (PUT, DELETE,
//     revocations, force logout, unlock, policy) are retried in the same
//     cases by default.
//   - Writes that make something new — creating a session, a login, a token
//     exchange, a refresh — are not retried once sent, unless
//     WithWriteRetry(RetryAllWrites) says so.
//
// The server answers 503 to a write when the write did not apply or when
// its outcome is unknown (the leader was lost, or the commit took longer
// than the server's write timeout: the entry may still commit). Repeating
// such a write is harmless for a revocation, but a repeated session create
// or login may create a second session, and a repeated refresh whose first
// attempt did apply presents a rotated refresh token: that is refresh-token
// reuse, which revokes the whole session (unless the policy's
// refresh_reuse_grace covers it). RetryAllWrites trades those duplicates for
// fewer failed logins during a leader election; RetryNoWrites retries no
// write that may have reached a server. Note also that a repeated delete
// whose first attempt applied answers not_found.
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
// # Errors
//
// An error answer is an *Error holding the HTTP status, the SPEC code, the
// message, Retry-After and, for session_limit_exceeded, the user's active
// sessions. errors.Is matches it against the sentinels ErrUnauthenticated,
// ErrNotFound, ErrSessionLimit, ErrLocked, ErrUnavailable and the others,
// and predicates such as IsUnauthenticated wrap that.
//
// # Events
//
// Events streams GET /v1/events as an iterator. A dropped connection is
// reopened with Last-Event-ID after a bounded backoff, so no event is lost
// or repeated; when the node no longer holds the events asked for the
// iterator ends with an error matching ErrGone.
package client
