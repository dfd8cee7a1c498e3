// Package testkit has one job: the helpers that the tests of every package
// share. It holds waiting for a condition (Eventually, Wait), a buffer and a
// clock safe for concurrent use (SyncBuffer, Clock), logs sent to t.Log
// (LogWriter, Logger), free loopback addresses (FreeAddr), a throwaway
// certificate authority (CA), an HTTP request read whole (Send), Prometheus
// samples (Metrics) and golden files (Golden).
//
// It is a leaf: it imports nothing from this module, so that the tests of
// any package, transport's included, can use it. Only tests and test
// harnesses import it.
package testkit
