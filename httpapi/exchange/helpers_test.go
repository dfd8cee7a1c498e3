package exchange

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	issuerA  = "https://idp.example.com"
	issuerB  = "https://login.other.example"
	audience = "sessiond"
)

// testNow is the fixed time every token is checked at.
var testNow = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// testKeys are generated once for the whole package: RSA generation is slow
// under the race detector.
type testKeys struct {
	rsaJWKS  *rsa.PrivateKey   // issuer A, JWKS kid "rsa-1"
	ecJWKS   *ecdsa.PrivateKey // issuer A, JWKS kid "ec-1" (P-256)
	edJWKS   ed25519.PrivateKey
	rsaEnc   *rsa.PrivateKey   // issuer A, JWKS kid "enc-1", "use": "enc" (skipped)
	rsaPEM   *rsa.PrivateKey   // issuer A, PEM "PUBLIC KEY", no kid
	ecPEM    *ecdsa.PrivateKey // issuer A, PEM "PUBLIC KEY", no kid
	rsaOther *rsa.PrivateKey   // issuer B, PEM "RSA PUBLIC KEY"
	attacker *rsa.PrivateKey   // nobody's
}

var sharedKeys = sync.OnceValue(func() *testKeys {
	rsaKey := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ecKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &testKeys{
		rsaJWKS: rsaKey(), ecJWKS: ecKey(), edJWKS: ed, rsaEnc: rsaKey(),
		rsaPEM: rsaKey(), ecPEM: ecKey(), rsaOther: rsaKey(), attacker: rsaKey(),
	}
})

// fixture is a trusted-issuers directory written from testKeys and the
// Verifier loaded from it.
type fixture struct {
	keys *testKeys
	dir  string
	v    *Verifier
	// rsaPEMFile is the content of issuer A's RSA PEM file: the "secret" of
	// the HS256 key-confusion attack.
	rsaPEMFile []byte
}

// baseConfig is the fixture's config file; tests may change a copy.
const baseConfig = `{
  "issuers": [
    {
      "issuer": "https://idp.example.com",
      "audiences": ["other-app", "sessiond"],
      "jwks_file": "idp-jwks.json",
      "public_keys": ["keys/idp-rsa.pem", "keys/idp-ec.pem"],
      "algorithms": ["RS256", "PS256", "ES256", "EdDSA"],
      "attribute_claims": {"email": "email", "roles": "roles", "age": "age", "admin": "admin", "nick": "nickname", "org": "org"}
    },
    {
      "issuer": "https://login.other.example",
      "audiences": ["sessiond"],
      "public_keys": ["other.pem"],
      "algorithms": ["RS256"],
      "leeway": "0s",
      "user_id_claim": "oid",
      "scope_claim": "scp"
    }
  ]
}`

func newFixture(t testing.TB) *fixture {
	t.Helper()
	k := sharedKeys()
	dir := t.TempDir()
	f := &fixture{keys: k, dir: dir}

	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsaJWKS.PublicKey, KeyID: "rsa-1", Use: "sig", Algorithm: "RS256"},
		{Key: &k.ecJWKS.PublicKey, KeyID: "ec-1", Use: "sig"},
		{Key: k.edJWKS.Public(), KeyID: "ed-1"},
		{Key: &k.rsaEnc.PublicKey, KeyID: "enc-1", Use: "enc"},
	}}
	writeJSON(t, filepath.Join(dir, "idp-jwks.json"), jwks)
	f.rsaPEMFile = pemPKIX(t, &k.rsaPEM.PublicKey)
	writeFile(t, filepath.Join(dir, "keys", "idp-rsa.pem"), f.rsaPEMFile)
	writeFile(t, filepath.Join(dir, "keys", "idp-ec.pem"), pemPKIX(t, &k.ecPEM.PublicKey))
	writeFile(t, filepath.Join(dir, "other.pem"), pem.EncodeToMemory(&pem.Block{
		Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsaOther.PublicKey),
	}))
	cfgPath := filepath.Join(dir, "trusted-issuers.json")
	writeFile(t, cfgPath, []byte(baseConfig))

	v, err := Load(cfgPath)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	f.v = v
	return f
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, data)
}

func pemPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// pemCertificate wraps the key's public half in a self-signed certificate.
func pemCertificate(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "idp signing"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// claimsA are valid claims for issuer A at testNow; tests change a copy.
func claimsA() map[string]any {
	return map[string]any{
		"iss":   issuerA,
		"aud":   []string{audience},
		"sub":   "alice",
		"exp":   testNow.Add(5 * time.Minute).Unix(),
		"iat":   testNow.Add(-time.Minute).Unix(),
		"nbf":   testNow.Add(-time.Minute).Unix(),
		"scope": "read write read",
		"email": "alice@example.com",
		"roles": []string{"admin", "dev"},
	}
}

// with returns a copy of claims with the changes applied; a nil value
// deletes the claim.
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// sign signs claims with go-jose; kid is left out of the header if empty.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handBuilt assembles a compact JWS from a header and claims; sigFn computes
// the signature over the signing input (nil: an empty signature).
func handBuilt(t testing.TB, header, claims map[string]any, sigFn func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	var sig []byte
	if sigFn != nil {
		sig = sigFn([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

// hs256 signs with HMAC-SHA256 under secret.
func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// edSign signs input with the JWKS Ed25519 key.
func edSign(k *testKeys, input []byte) []byte { return ed25519.Sign(k.edJWKS, input) }
