// Package httpapi is sessiond's HTTP API (docs/api.md) on echo: routing, the
// error model, admin-key and session-token authentication, strict JSON, the
// consistency headers and parameters, and the mapping between JSON and the
// node's operations.
//
// It talks to the node through role interfaces (roles.go): Sessions, Users,
// PolicyStore and Cluster, and optionally EventSource for the event stream.
// Each handler reaches only the roles it needs; Config.Backend takes one
// value that plays them all (a *node.Node, or a test double) and New splits
// it. The read-consistency policy (min_index, consistency=leader, max_stale
// and the X-Sessiond-* headers) is in consistency.go. The replicated state
// lives in the node; this package keeps two small pieces of its own, per
// node, in memory only and forgotten on restart: the login rate limiter's
// buckets by client address (bounded; idle addresses are dropped first), and
// the automatic cookie refreshes of the last few seconds, shared so that
// concurrent requests carrying one refresh cookie rotate it once.
// No token, password or key is ever logged: request logs name the route
// pattern, never the path's values or headers.
package httpapi
