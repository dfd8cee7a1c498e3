// Package httpapi is sessiond's HTTP API (docs/api.md) on echo: routing, the
// error model, admin-key and session-token authentication, strict JSON, the
// consistency headers and parameters, and the mapping between JSON and the
// node's operations.
//
// It talks to the node through the Backend interface, so it can be served
// over any node (or a test double). The replicated state lives in the node;
// this package keeps two small pieces of its own, per node, in memory only
// and forgotten on restart: the login rate limiter's buckets by client
// address (bounded; idle addresses are dropped first), and the automatic
// cookie refreshes of the last few seconds, shared so that concurrent
// requests carrying one refresh cookie rotate it once.
// No token, password or key is ever logged: request logs name the route
// pattern, never the path's values or headers.
package httpapi
