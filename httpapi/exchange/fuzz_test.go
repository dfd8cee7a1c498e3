package exchange

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// fuzzKeys are small keys for the parsers' seeds (RSA generation would
// slow every fuzz worker's start).
type fuzzKeys struct {
	ec256 *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
}

var sharedFuzzKeys = sync.OnceValue(func() fuzzKeys {
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return fuzzKeys{ec256: ec(elliptic.P256()), ec384: ec(elliptic.P384()), ed: ed}
})

func marshalJWKS(tb testing.TB, keys ...jose.JSONWebKey) []byte {
	tb.Helper()
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// sameKeys reports how two key lists differ, "" when they hold the same
// keys in the same order.
func sameKeys(a, b []verifyKey) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d keys, then %d", len(a), len(b))
	}
	for i := range a {
		eq, ok := a[i].key.(interface{ Equal(crypto.PublicKey) bool })
		if a[i].kid != b[i].kid || a[i].alg != b[i].alg || !ok || !eq.Equal(b[i].key) {
			return fmt.Sprintf("key %d: kid %q alg %q %T, then kid %q alg %q %T", i, a[i].kid, a[i].alg, a[i].key, b[i].kid, b[i].alg, b[i].key)
		}
	}
	return ""
}

// checkAccepted fails unless every key is one Verify may use as loaded.
func checkAccepted(t *testing.T, keys []verifyKey) {
	t.Helper()
	for i, k := range keys {
		if _, err := checkPublicKey(k.key); err != nil {
			t.Fatalf("key %d accepted but: %v", i, err)
		}
		if k.alg != "" && (!slices.Contains(asymmetricAlgorithms, k.alg) || !keyFits(k.key, k.alg)) {
			t.Fatalf("key %d accepted for %q, which it cannot verify", i, k.alg)
		}
	}
}

// FuzzParseJWKS checks the JWK Set parser: no panic; every key it accepts
// is a public key of an allowed type, fit for its "alg"; and the accepted
// keys, written out as a JWK Set again, parse to the same keys.
func FuzzParseJWKS(f *testing.F) {
	k := sharedFuzzKeys()
	f.Add(marshalJWKS(f,
		jose.JSONWebKey{Key: &k.ec256.PublicKey, KeyID: "ec-1", Use: "sig", Algorithm: "ES256"},
		jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed-1"},
		jose.JSONWebKey{Key: &k.ec384.PublicKey, KeyID: "enc-1", Use: "enc"},
	))
	f.Add(marshalJWKS(f, jose.JSONWebKey{Key: &k.ec384.PublicKey, Algorithm: "ES256"}))   // alg does not fit
	f.Add(marshalJWKS(f, jose.JSONWebKey{Key: k.ec256, KeyID: "private"}))                // private key
	f.Add(marshalJWKS(f, jose.JSONWebKey{Key: []byte("0123456789abcdef"), KeyID: "oct"})) // symmetric
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"X25519","x":"AAAA"},{"kty":"unknown"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err != nil {
			return
		}
		checkAccepted(t, keys)
		jwks := make([]jose.JSONWebKey, len(keys))
		for i, k := range keys {
			jwks[i] = jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: string(k.alg)}
		}
		again, err := json.Marshal(jose.JSONWebKeySet{Keys: jwks})
		if err != nil {
			t.Fatalf("accepted keys do not encode: %v", err)
		}
		back, err := parseJWKS(again)
		if err != nil {
			t.Fatalf("the accepted keys, written again, are refused: %v\n%s", err, again)
		}
		if diff := sameKeys(keys, back); diff != "" {
			t.Fatalf("written again and parsed: %s", diff)
		}
	})
}

// FuzzParsePEM checks the PEM key-file parser: no panic; it accepts only
// public keys of allowed types, at least one; and they, written again as
// PKIX blocks, parse to the same keys.
func FuzzParsePEM(f *testing.F) {
	k := sharedFuzzKeys()
	pkix := func(pub any) []byte { return pemPKIX(f, pub) }
	f.Add(append(pkix(&k.ec256.PublicKey), pkix(k.ed.Public())...))
	f.Add(pemCertificate(f, k.ec384))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"))
	f.Add([]byte("not pem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parsePEM(data)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("accepted a file without keys")
		}
		checkAccepted(t, keys)
		var again []byte
		for _, k := range keys {
			if k.kid != "" || k.alg != "" {
				t.Fatalf("a PEM key with kid %q alg %q", k.kid, k.alg)
			}
			der, err := x509.MarshalPKIXPublicKey(k.key)
			if err != nil {
				t.Fatalf("accepted key does not encode: %v", err)
			}
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
		}
		back, err := parsePEM(again)
		if err != nil {
			t.Fatalf("the accepted keys, written again, are refused: %v", err)
		}
		if diff := sameKeys(keys, back); diff != "" {
			t.Fatalf("written again and parsed: %s", diff)
		}
	})
}

// FuzzLoad checks the trusted-issuers file loader on any file content,
// with one JWK Set and one PEM file beside it: no panic; a refusal wraps
// ErrInvalidConfig; an accepted file is a valid config, and the config
// written again loads to the same issuers and keys.
func FuzzLoad(f *testing.F) {
	k := sharedFuzzKeys()
	dir := f.TempDir()
	writeFile(f, filepath.Join(dir, "jwks.json"), marshalJWKS(f,
		jose.JSONWebKey{Key: &k.ec256.PublicKey, KeyID: "ec-1", Use: "sig"},
		jose.JSONWebKey{Key: k.ed.Public(), KeyID: "ed-1", Algorithm: "EdDSA"},
	))
	writeFile(f, filepath.Join(dir, "key.pem"), pemPKIX(f, &k.ec384.PublicKey))
	f.Add([]byte(`{"issuers":[{"issuer":"https://idp.example.com","audiences":["sessiond"],"jwks_file":"jwks.json"}]}`))
	f.Add([]byte(`{"issuers":[{"issuer":"a","audiences":["x","y"],"public_keys":["key.pem"],"algorithms":["ES384","RS256"],"leeway":"1m",` +
		`"user_id_claim":"oid","scope_claim":"scp","attribute_claims":{"email":"email"}},` +
		`{"issuer":"b","audiences":["x"],"jwks_file":"jwks.json","public_keys":["key.pem"],"leeway":"0s"}]}`))
	f.Add([]byte(`{"issuers":[{"issuer":"a","audiences":["x"],"jwks_file":"jwks.json","algorithms":["HS256"]}]}`))
	f.Add([]byte(`{"issuers":[{"issuer":"a","audiences":["x"],"public_keys":["key.pem"],"algorithms":["RS256"]}]}`))
	f.Add([]byte(`{"issuers":[{"issuer":"a","audiences":["x"],"jwks_file":"jwks.json","extra":1}]}`))
	f.Add([]byte(`{"issuers":[]} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Key paths only inside dir: an absolute or climbing path could
		// name a device or a pipe and block the loader.
		if cfg, err := ParseConfig(data); err == nil {
			for _, ic := range cfg.Issuers {
				for _, p := range append([]string{ic.JWKSFile}, ic.PublicKeys...) {
					if filepath.IsAbs(p) || strings.Contains(p, "..") || strings.ContainsRune(p, 0) {
						return
					}
				}
			}
		}
		path := filepath.Join(dir, "trusted-issuers.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := Load(path)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("refusal %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		cfg, err := ParseConfig(data)
		if err != nil || cfg.Validate() != nil {
			t.Fatalf("loaded a file that does not parse (%v) or validate", err)
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, again, 0o600); err != nil {
			t.Fatal(err)
		}
		v2, err := Load(path)
		if err != nil {
			t.Fatalf("the config written again (%s) does not load: %v", again, err)
		}
		if diff := sameVerifier(v, v2); diff != "" {
			t.Fatalf("%s loads, written again as %s it loads differently: %s", data, again, diff)
		}
	})
}

// sameVerifier reports how two verifiers differ, "" when they do not.
func sameVerifier(a, b *Verifier) string {
	if !slices.Equal(a.Issuers(), b.Issuers()) {
		return fmt.Sprintf("issuers %q, then %q", a.Issuers(), b.Issuers())
	}
	for name, x := range a.issuers {
		y := b.issuers[name]
		switch {
		case !slices.Equal(x.audiences, y.audiences), !slices.Equal(x.algorithms, y.algorithms),
			x.leeway != y.leeway, x.userIDClaim != y.userIDClaim, x.scopeClaim != y.scopeClaim,
			fmt.Sprint(x.attributes) != fmt.Sprint(y.attributes), fmt.Sprint(x.kids) != fmt.Sprint(y.kids),
			x.kidless != y.kidless:
			return fmt.Sprintf("issuer %q: %+v, then %+v", name, *x, *y)
		}
		if diff := sameKeys(x.keys, y.keys); diff != "" {
			return fmt.Sprintf("issuer %q: %s", name, diff)
		}
	}
	return ""
}
