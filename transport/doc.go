// Package transport carries node-to-node traffic: Raft's stream layer and
// the forwarding RPC share one TCP port and are told apart by the first byte
// of each connection. With a cluster CA every connection is mutual TLS: a
// peer without a certificate from that CA is refused before it can speak
// Raft or RPC.
//
// Every connection opens with a kind byte and the dialer's advertised
// address, so both ends know which peer they talk to. That is what the
// fault layer (Faults) uses to cut chosen pairs of nodes in tests, in either
// direction, on new and established connections alike.
package transport
