package clustertest

import (
	"net"
	"testing"

	"github.com/sessiond/sessiond/transport"
	"github.com/sessiond/sessiond/transport/testkit"
)

// PKI is a throwaway certificate authority for cluster TLS tests.
type PKI struct {
	t      testing.TB
	ca     *testkit.CA
	CAFile string
}

// NewPKI creates a CA named name in a temporary directory.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	ca := testkit.NewCA(t, name)
	return &PKI{t: t, ca: ca, CAFile: ca.CertFile}
}

// Node issues a certificate for a node on 127.0.0.1 and returns its TLS
// files.
func (p *PKI) Node(name string) transport.TLSFiles {
	p.t.Helper()
	cert, key := p.ca.Issue(name, net.IPv4(127, 0, 0, 1))
	return transport.TLSFiles{Cert: cert, Key: key, CA: p.CAFile}
}

// MutualTLS loads a node's identity.
func (p *PKI) MutualTLS(name string) *transport.MutualTLS {
	p.t.Helper()
	m, err := transport.LoadMutualTLS(p.Node(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}
