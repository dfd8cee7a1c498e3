package transport

import (
	"net"
	"testing"

	"github.com/sessiond/sessiond/transport/testkit"
)

// testCA is a certificate authority made for one test: its certificate is
// written to CertFile, and it signs node certificates on demand.
type testCA struct {
	*testkit.CA
	t *testing.T
}

// newTestCA creates a self-signed CA and writes its certificate as PEM to a
// temporary directory.
func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	return &testCA{CA: testkit.NewCA(t, name), t: t}
}

// issue signs a certificate usable as TLS server and client with ips as its
// IP SANs (none: no SAN at all), and returns its files with this CA as the
// cluster CA.
func (ca *testCA) issue(name string, ips ...net.IP) TLSFiles {
	ca.t.Helper()
	cert, key := ca.Issue(name, ips...)
	return TLSFiles{Cert: cert, Key: key, CA: ca.CertFile}
}

// node issues a certificate with 127.0.0.1 as IP SAN, as real nodes have.
func (ca *testCA) node(name string) TLSFiles {
	ca.t.Helper()
	return ca.issue(name, net.IPv4(127, 0, 0, 1))
}

// mutualTLS issues a node certificate and loads it with this CA.
func (ca *testCA) mutualTLS(name string) *MutualTLS {
	ca.t.Helper()
	return mustLoad(ca.t, ca.node(name))
}

func mustLoad(t *testing.T, f TLSFiles) *MutualTLS {
	t.Helper()
	m, err := LoadMutualTLS(f)
	if err != nil {
		t.Fatalf("LoadMutualTLS(%+v): %v", f, err)
	}
	return m
}
