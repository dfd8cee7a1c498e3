package transport

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadMutualTLS_Errors(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	good := ca.node("node1")
	dir := t.TempDir()
	emptyCA := filepath.Join(dir, "empty-ca.pem")
	if err := os.WriteFile(emptyCA, []byte("this file holds no certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyAsCA := good.Key // PEM, but a private key rather than a certificate

	tests := []struct {
		name  string
		files TLSFiles
		want  string // substring of the error
	}{
		{"no files", TLSFiles{}, "needs a certificate"},
		{"no certificate named", TLSFiles{Key: good.Key, CA: good.CA}, "needs a certificate"},
		{"no key named", TLSFiles{Cert: good.Cert, CA: good.CA}, "needs a certificate"},
		{"no CA named", TLSFiles{Cert: good.Cert, Key: good.Key}, "needs a certificate"},
		{"certificate file missing", TLSFiles{Cert: filepath.Join(dir, "nope.pem"), Key: good.Key, CA: good.CA}, "load certificate"},
		{"key file missing", TLSFiles{Cert: good.Cert, Key: filepath.Join(dir, "nope-key.pem"), CA: good.CA}, "load certificate"},
		{"key does not match certificate", TLSFiles{Cert: good.Cert, Key: ca.node("node2").Key, CA: good.CA}, "load certificate"},
		{"CA file missing", TLSFiles{Cert: good.Cert, Key: good.Key, CA: filepath.Join(dir, "nope-ca.pem")}, "read CA"},
		{"CA file without PEM", TLSFiles{Cert: good.Cert, Key: good.Key, CA: emptyCA}, "no certificate in CA file"},
		{"CA file with only a key", TLSFiles{Cert: good.Cert, Key: good.Key, CA: keyAsCA}, "no certificate in CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := LoadMutualTLS(tt.files)
			if err == nil {
				t.Fatalf("LoadMutualTLS succeeded (%+v), want an error", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoadMutualTLS_RequiresTLS13AndClientCertificates(t *testing.T) {
	m := newTestCA(t, "cluster-a").mutualTLS("node1")
	if m.Server.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server ClientAuth = %v, want RequireAndVerifyClientCert", m.Server.ClientAuth)
	}
	for name, c := range map[string]*tls.Config{"server": m.Server, "client": m.Client} {
		if c.MinVersion != tls.VersionTLS13 {
			t.Errorf("%s MinVersion = %#x, want TLS 1.3", name, c.MinVersion)
		}
		if len(c.Certificates) != 1 {
			t.Errorf("%s has %d certificates, want 1", name, len(c.Certificates))
		}
	}
	if m.Client.VerifyConnection == nil {
		t.Error("client skips the built-in verification but has no VerifyConnection")
	}
}

func TestMutualTLS_AcceptsPeersOfTheClusterCA(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	srv := listen(t, Config{TLS: ca.mutualTLS("server")})
	rec := newRPCRecorder(srv)
	cli := listen(t, Config{TLS: ca.mutualTLS("client")})

	c := dial(t, cli, srv.Addr(), KindRPC)
	call := rec.next(t)
	if call.peer != cli.Addr() {
		t.Errorf("peer = %q, want %q", call.peer, cli.Addr())
	}
	roundTrip(t, c, "over mutual TLS")
}

// Host names are deliberately not verified (nodes are reached at addresses
// that change): a certificate that names no address at all is accepted on
// both ends as long as it chains to the cluster CA.
func TestMutualTLS_AcceptsCertificateWithoutAddressSAN(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	noSAN := func(name string) *MutualTLS { return mustLoad(t, ca.issue(name)) }
	srv := listen(t, Config{TLS: noSAN("server")})
	rec := newRPCRecorder(srv)
	cli := listen(t, Config{TLS: noSAN("client")})

	c := dial(t, cli, srv.Addr(), KindRPC)
	if call := rec.next(t); call.peer != cli.Addr() {
		t.Errorf("peer = %q, want %q", call.peer, cli.Addr())
	}
	roundTrip(t, c, "no SAN needed")
}

func TestMutualTLS_RefusesDialerWithCertificateFromAnotherCA(t *testing.T) {
	caA := newTestCA(t, "cluster-a")
	caB := newTestCA(t, "cluster-b")
	srv := listen(t, Config{TLS: caA.mutualTLS("server")})
	rec := newRPCRecorder(srv)

	// B under A's very name: Go's client sends it, since the server asks
	// for certificates issued by that name, and only the signature check
	// can tell them apart.
	caBNamedA := newTestCA(t, "cluster-a")

	foreign := caB.node("intruder")
	trustingA := func(f TLSFiles) *MutualTLS {
		return mustLoad(t, TLSFiles{Cert: f.Cert, Key: f.Key, CA: caA.CertFile})
	}
	// Sends its certificate even though the server asks for one from A
	// (a Go client would otherwise send none).
	forced := trustingA(foreign)
	forced.Client = forced.Client.Clone()
	forced.Client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &forced.Client.Certificates[0], nil
	}
	tests := []struct {
		name string
		tls  *MutualTLS
	}{
		// These trust the cluster CA, so only the server's check stops them.
		{"certificate from B, trusting A", trustingA(foreign)},
		{"certificate from B pushed on the server", forced},
		{"certificate from a CA named like A", trustingA(caBNamedA.node("lookalike"))},
		// A node of another cluster altogether.
		{"certificate from B, trusting B", mustLoad(t, foreign)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := listen(t, Config{TLS: tt.tls})
			for _, kind := range []Kind{KindRPC, KindRaft} {
				c, err := cli.Dial(srv.Addr(), kind, 5*time.Second)
				refused(t, c, err)
			}
		})
	}
	assertNoServedConnections(t, srv, rec)
}

func TestMutualTLS_RefusesDialerWithoutCertificate(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	srv := listen(t, Config{TLS: ca.mutualTLS("server")})
	rec := newRPCRecorder(srv)

	raw, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// A TLS client that would trust anything but presents no certificate.
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err == nil {
		_, err = c.Write(preamble(KindRPC, "127.0.0.1:1"))
		if err == nil {
			waitClosed(t, c, 5*time.Second)
		}
	}
	assertNoServedConnections(t, srv, rec)
}

func TestMutualTLS_RefusesPlainTCPDialer(t *testing.T) {
	ca := newTestCA(t, "cluster-a")
	srv := listen(t, Config{TLS: ca.mutualTLS("server")})
	rec := newRPCRecorder(srv)

	for _, kind := range []Kind{KindRPC, KindRaft} {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		// A well-formed preamble, but outside TLS.
		if _, err := c.Write(preamble(kind, "127.0.0.1:1")); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c, 5*time.Second)
		c.Close()
	}
	// Also a plain Transport, as a node started without TLS would dial.
	plain := listen(t, Config{})
	c, err := plain.Dial(srv.Addr(), KindRPC, 5*time.Second)
	refused(t, c, err)

	assertNoServedConnections(t, srv, rec)
}

func TestMutualTLS_RefusesServerWithCertificateFromAnotherCA(t *testing.T) {
	caA := newTestCA(t, "cluster-a")
	caB := newTestCA(t, "cluster-b")
	// The impostor trusts A, so it would accept our client: only the
	// client's check of the server can refuse it.
	tests := []struct {
		name string
		ca   *testCA
	}{
		{"certificate from B", caB},
		{"certificate from a CA named like A", newTestCA(t, "cluster-a")},
	}
	cli := listen(t, Config{TLS: caA.mutualTLS("client")})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.ca.node("impostor")
			srv := listen(t, Config{TLS: mustLoad(t, TLSFiles{Cert: f.Cert, Key: f.Key, CA: caA.CertFile})})
			rec := newRPCRecorder(srv)
			for _, kind := range []Kind{KindRPC, KindRaft} {
				c, err := cli.Dial(srv.Addr(), kind, 5*time.Second)
				if err == nil {
					c.Close()
					t.Fatalf("Dial (%c) to a server with a foreign certificate succeeded", kind)
				}
				t.Logf("dial refused: %v", err)
			}
			assertNoServedConnections(t, srv, rec)
		})
	}
}

// assertNoServedConnections closes srv, which waits for every connection
// still in its handshake, and then checks that nothing reached the RPC
// handler or Raft.
func assertNoServedConnections(t *testing.T, srv *Transport, rec *rpcRecorder) {
	t.Helper()
	closeWithin(t, srv, 10*time.Second)
	if n := rec.count(); n != 0 {
		t.Errorf("the RPC handler was called %d times, want 0", n)
	}
	select {
	case c := <-srv.raftConns:
		c.Close()
		t.Error("a refused connection was queued for Raft")
	default:
	}
}

// preamble builds the opening bytes of a connection by hand.
func preamble(kind Kind, addr string) []byte {
	return append([]byte{byte(kind), byte(len(addr))}, addr...)
}
