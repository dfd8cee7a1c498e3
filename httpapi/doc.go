// Package httpapi is sessiond's HTTP API (SPEC §4) on echo: routing, the
// error model, admin-key and session-token authentication, strict JSON, the
// consistency headers and parameters, and the mapping between JSON and the
// node's operations.
//
// It talks to the node through the narrow Backend interface, so it can be
// served over any node (or a test double) and holds no state of its own.
// No token, password or key is ever logged: request logs name the route
// pattern, never the path's values or headers.
package httpapi
