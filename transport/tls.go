package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the PEM files of a node's cluster identity.
type TLSFiles struct {
	Cert string // this node's certificate
	Key  string // its private key
	CA   string // the cluster CA that signs every node's certificate
}

// Enabled reports whether any file is given.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// MutualTLS holds the server and client configurations of one node.
type MutualTLS struct {
	Server *tls.Config
	Client *tls.Config
}

// LoadMutualTLS builds mutual-TLS configurations from the files. Peers are
// authenticated by their chain to the cluster CA; host names are not
// checked, since nodes are reached by addresses that change (containers).
func LoadMutualTLS(f TLSFiles) (*MutualTLS, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("transport: mutual TLS needs a certificate, its key and the cluster CA")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("transport: load certificate: %w", err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("transport: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("transport: no certificate in CA file %s", f.CA)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("transport: peer sent no certificate")
		}
		opts := x509.VerifyOptions{
			Roots:         pool,
			Intermediates: x509.NewCertPool(),
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	server := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	client := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is verified in VerifyConnection, without the host name.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
	}
	return &MutualTLS{Server: server, Client: client}, nil
}
