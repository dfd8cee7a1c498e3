package exchange

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// verifyKey is one public key of an issuer.
type verifyKey struct {
	kid string                  // "" for PEM keys and JWKS keys without kid
	alg jose.SignatureAlgorithm // "" unless the JWK names one
	key crypto.PublicKey        // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether the key can verify a signature made with alg.
func (k verifyKey) fits(alg jose.SignatureAlgorithm) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	return keyFits(k.key, alg)
}

// keyFits reports whether alg is a signature algorithm for the key's type
// (and, for ECDSA, its curve).
func keyFits(key crypto.PublicKey, alg jose.SignatureAlgorithm) bool {
	switch key := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return key.Curve == elliptic.P256()
		case jose.ES384:
			return key.Curve == elliptic.P384()
		case jose.ES512:
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// checkPublicKey accepts the public key types that can verify an allowed
// algorithm, refusing weak RSA keys.
func checkPublicKey(key any) (crypto.PublicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, errors.New("ECDSA key on an unsupported curve (P-256, P-384 or P-521 only)")
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("malformed Ed25519 key")
		}
		return k, nil
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return nil, errors.New("holds a private key: give the issuer's public key only")
	case []byte:
		return nil, errors.New("holds a symmetric (oct) key: only public keys are accepted")
	}
	return nil, fmt.Errorf("unsupported key type %T (RSA, ECDSA or Ed25519 public keys only)", key)
}

// loadJWKS reads a JWK Set file. Keys for encryption ("use": "enc" or an
// encryption "alg") and keys of unknown types are skipped (RFC 7517 §5);
// private, symmetric, weak and malformed keys are errors.
func loadJWKS(path string) ([]verifyKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// parseJWKS reads the keys of a JWK Set (see loadJWKS).
func parseJWKS(data []byte) ([]verifyKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %v", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`not a JWK Set: no "keys" array`)
	}
	var keys []verifyKey
	for i, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("keys[%d]: %v", i, err)
		}
		key, err := checkPublicKey(jwk.Key)
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (kid %q): %v", i, jwk.KeyID, err)
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		alg := jose.SignatureAlgorithm(jwk.Algorithm)
		if alg != "" {
			if !slices.Contains(asymmetricAlgorithms, alg) {
				continue // an encryption key ("RSA-OAEP", "ECDH-ES", ...)
			}
			if !keyFits(key, alg) {
				return nil, fmt.Errorf("keys[%d] (kid %q): \"alg\": %s does not fit this key's type", i, jwk.KeyID, alg)
			}
		}
		keys = append(keys, verifyKey{kid: jwk.KeyID, alg: alg, key: key})
	}
	return keys, nil
}

// loadPEM reads a PEM file of public keys: "PUBLIC KEY" (PKIX), "RSA PUBLIC
// KEY" (PKCS #1) or "CERTIFICATE" blocks, one or more.
func loadPEM(path string) ([]verifyKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// parsePEM reads the public keys of PEM data (see loadPEM).
func parsePEM(data []byte) ([]verifyKey, error) {
	var keys []verifyKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d holds a private key (%q): give the issuer's public key only", n, block.Type)
			}
			return nil, fmt.Errorf(`PEM block %d: unsupported type %q (want "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE")`, n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %v", n, block.Type, err)
		}
		pub, err := checkPublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %v", n, block.Type, err)
		}
		keys = append(keys, verifyKey{key: pub})
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}
