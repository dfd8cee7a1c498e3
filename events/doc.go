// Package events defines sessiond's replicated events and their wire form.
//
// Every change to session state is one event. An event travels inside a
// versioned envelope: a type byte, a version byte, then a msgpack body holding
// the leader-stamped time, the request id that makes retries idempotent, and
// the payload. Decoding is strict: an unknown type or version, an unknown
// field or trailing bytes are errors, never silently skipped, because a node
// that skipped an entry would diverge from its peers.
//
// The package knows nothing of Raft or of the state machine; it only says what
// an event is and how it is written down. Tokens never appear in an event:
// only their SHA-256 hashes do (see TokenHash).
package events
