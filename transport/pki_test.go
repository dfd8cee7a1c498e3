package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test: its certificate is
// written to CertFile, and it signs leaf certificates on demand.
type testCA struct {
	t        *testing.T
	dir      string
	name     string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	CertFile string
}

// leafOptions shape a leaf certificate.
type leafOptions struct {
	// IPs are the IP SANs; nil means none at all (no DNS names either).
	IPs []net.IP
}

// newTestCA creates a self-signed CA and writes its certificate as PEM to a
// temporary directory.
func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	ca := &testCA{t: t, dir: t.TempDir(), name: name, cert: cert, key: key}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// issue signs a node certificate usable as TLS server and client, writes it
// and its key as PEM, and returns the file names with this CA as the
// cluster CA.
func (ca *testCA) issue(name string, opts leafOptions) TLSFiles {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key for %s: %v", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  opts.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("create certificate for %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key for %s: %v", name, err)
	}
	files := TLSFiles{
		Cert: filepath.Join(ca.dir, name+".pem"),
		Key:  filepath.Join(ca.dir, name+"-key.pem"),
		CA:   ca.CertFile,
	}
	writePEM(t, files.Cert, "CERTIFICATE", der)
	writePEM(t, files.Key, "PRIVATE KEY", keyDER)
	return files
}

// node issues a certificate with 127.0.0.1 as IP SAN, as real nodes have.
func (ca *testCA) node(name string) TLSFiles {
	ca.t.Helper()
	return ca.issue(name, leafOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
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

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	return n
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
