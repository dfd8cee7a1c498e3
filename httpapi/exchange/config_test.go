package exchange

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestLoad_ConfigErrors(t *testing.T) {
	k := sharedKeys()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// files are written into every case's directory.
	files := map[string][]byte{
		"rsa.pem":  pemPKIX(t, &k.rsaPEM.PublicKey),
		"ed.pem":   pemPKIX(t, k.edJWKS.Public()),
		"weak.pem": pemPKIX(t, &weak.PublicKey),
		"p224.pem": pemPKIX(t, &p224.PublicKey),
		"private.pem": pem.EncodeToMemory(&pem.Block{
			Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsaPEM),
		}),
		"not-pem.pem":  []byte("hello"),
		"garbage.json": []byte("{"),
		"empty.json":   []byte(`{"other": 1}`),
		"oct.json":     jwksJSON(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256"}),
		"private.json": jwksJSON(t, jose.JSONWebKey{Key: k.ecJWKS, KeyID: "ec-private"}),
		"misfit.json":  jwksJSON(t, jose.JSONWebKey{Key: &k.ecJWKS.PublicKey, KeyID: "ec", Algorithm: "RS256"}),
		"enc.json":     jwksJSON(t, jose.JSONWebKey{Key: &k.rsaEnc.PublicKey, KeyID: "enc", Use: "enc"}),
	}
	// issuer builds one issuer object from a valid base and changed fields
	// (given as raw JSON; "-" removes the field).
	issuer := func(changes map[string]string) string {
		fields := map[string]string{
			"issuer":      `"https://idp.example.com"`,
			"audiences":   `["sessiond"]`,
			"public_keys": `["rsa.pem"]`,
		}
		for k, v := range changes {
			if v == "-" {
				delete(fields, k)
			} else {
				fields[k] = v
			}
		}
		var parts []string
		for k, v := range fields {
			parts = append(parts, `"`+k+`": `+v)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	one := func(changes map[string]string) string { return `{"issuers": [` + issuer(changes) + `]}` }

	tests := []struct {
		name   string
		config string
		want   []string // parts of the error text
	}{
		{"HS256 in algorithms", one(map[string]string{"algorithms": `["RS256", "HS256"]`}), []string{"issuers[0]", "https://idp.example.com", "algorithms[1]", "HS256", "symmetric"}},
		{"HS512 in algorithms", one(map[string]string{"algorithms": `["HS512"]`}), []string{"algorithms[0]", "HS512"}},
		{"none in algorithms", one(map[string]string{"algorithms": `["none"]`}), []string{"algorithms[0]", `"none"`}},
		{"unknown algorithm", one(map[string]string{"algorithms": `["rs256"]`}), []string{"algorithms[0]", "unknown algorithm"}},
		{"empty algorithms", one(map[string]string{"algorithms": `[]`}), []string{"algorithms", "must not be empty"}},
		{"no audiences field", one(map[string]string{"audiences": "-"}), []string{"issuers[0]", "audiences", "at least one"}},
		{"empty audiences", one(map[string]string{"audiences": `[]`}), []string{"audiences", "at least one"}},
		{"empty audience", one(map[string]string{"audiences": `["sessiond", ""]`}), []string{"audiences[1]", "empty"}},
		{"no issuer", one(map[string]string{"issuer": "-"}), []string{"issuers[0]", "issuer: is required"}},
		{"issuer with white space", one(map[string]string{"issuer": `" https://idp.example.com"`}), []string{"issuer", "white space"}},
		{"no keys", one(map[string]string{"public_keys": "-"}), []string{"issuers[0]", "jwks_file", "no keys"}},
		{"unknown field in an issuer", one(map[string]string{"audience": `"sessiond"`}), []string{"issuers[0]", "https://idp.example.com", `unknown field "audience"`}},
		{"unknown top-level field", `{"issuers": [], "version": 2}`, []string{`unknown field "version"`}},
		{"wrong type", one(map[string]string{"audiences": `"sessiond"`}), []string{"issuers[0]", "audiences"}},
		{"trailing data", one(nil) + ` {}`, []string{"after the JSON value"}},
		{"not JSON", `issuers: []`, []string{"invalid character"}},
		{"no issuers", `{"issuers": []}`, []string{"at least one issuer"}},
		{"issuers missing", `{}`, []string{"at least one issuer"}},
		{"duplicate issuer", `{"issuers": [` + issuer(nil) + `, ` + issuer(nil) + `]}`, []string{"issuers[1]", "already configured at issuers[0]"}},
		{"leeway too large", one(map[string]string{"leeway": `"10m"`}), []string{"leeway", "out of range"}},
		{"leeway negative", one(map[string]string{"leeway": `"-1s"`}), []string{"leeway", "out of range"}},
		{"leeway not a duration", one(map[string]string{"leeway": `"30"`}), []string{"leeway", "not a Go duration"}},
		{"empty attribute claim", one(map[string]string{"attribute_claims": `{"email": ""}`}), []string{"attribute_claims", "email"}},
		{"unreadable PEM file", one(map[string]string{"public_keys": `["rsa.pem", "missing.pem"]`}), []string{"issuers[0]", "public_keys[1]", "missing.pem"}},
		{"unreadable JWKS file", one(map[string]string{"jwks_file": `"missing.json"`}), []string{"issuers[0]", "jwks_file", "missing.json"}},
		{"key path is a directory", one(map[string]string{"public_keys": `["."]`}), []string{"public_keys[0]"}},
		{"not a PEM file", one(map[string]string{"public_keys": `["not-pem.pem"]`}), []string{"public_keys[0]", "no PEM block"}},
		{"private key PEM", one(map[string]string{"public_keys": `["private.pem"]`}), []string{"public_keys[0]", "private key"}},
		{"weak RSA key", one(map[string]string{"public_keys": `["weak.pem"]`}), []string{"public_keys[0]", "1024 bits", "too weak"}},
		{"unsupported curve", one(map[string]string{"public_keys": `["p224.pem"]`}), []string{"public_keys[0]", "curve"}},
		{"JWKS not JSON", one(map[string]string{"jwks_file": `"garbage.json"`}), []string{"jwks_file", "not a JWK Set"}},
		{"JWKS without keys", one(map[string]string{"jwks_file": `"empty.json"`}), []string{"jwks_file", `no "keys"`}},
		{"JWKS with a symmetric key", one(map[string]string{"jwks_file": `"oct.json"`}), []string{"jwks_file", "keys[0]", "symmetric"}},
		{"JWKS with a private key", one(map[string]string{"jwks_file": `"private.json"`}), []string{"jwks_file", "keys[0]", "private key"}},
		{"JWK alg does not fit its key", one(map[string]string{"jwks_file": `"misfit.json"`}), []string{"jwks_file", "keys[0]", "RS256"}},
		{"only encryption keys", one(map[string]string{"public_keys": "-", "jwks_file": `"enc.json"`}), []string{"no usable signing key"}},
		{"no key fits the algorithms", one(map[string]string{"public_keys": `["ed.pem"]`, "algorithms": `["RS256", "ES256"]`}), []string{"no usable signing key", "RS256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range files {
				writeFile(t, filepath.Join(dir, name), data)
			}
			path := filepath.Join(dir, "trusted-issuers.json")
			writeFile(t, path, []byte(tt.config))
			v, err := Load(path)
			if err == nil {
				t.Fatalf("loaded %v", v.Issuers())
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not wrap ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("got %v", err)
	}
}

func TestNew_Defaults(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rsa.pem"), pemPKIX(t, &k.rsaPEM.PublicKey))
	v, err := New(Config{Issuers: []IssuerConfig{{
		Issuer: issuerA, Audiences: []string{audience}, PublicKeys: []string{"rsa.pem"},
	}}}, dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	iss := v.issuers[issuerA]
	if got := algNames(iss.algorithms); got != "RS256 ES256 EdDSA" {
		t.Errorf("algorithms = %s", got)
	}
	if iss.leeway != DefaultLeeway || iss.userIDClaim != "sub" || iss.scopeClaim != "scope" {
		t.Errorf("leeway %s, user-id claim %q, scope claim %q", iss.leeway, iss.userIDClaim, iss.scopeClaim)
	}
	// PS256 is not among the defaults.
	if _, err := v.Verify(sign(t, jose.PS256, k.rsaPEM, "", claimsA()), testNow); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("PS256 token: got %v, want rejection", err)
	}
	if _, err := v.Verify(sign(t, jose.RS256, k.rsaPEM, "", claimsA()), testNow); err != nil {
		t.Errorf("RS256 token: %v", err)
	}
}

func TestNew_AbsoluteKeyPathsAndLeeway(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	abs := filepath.Join(dir, "sub", "rsa.pem")
	writeFile(t, abs, pemPKIX(t, &k.rsaPEM.PublicKey))
	v, err := New(Config{Issuers: []IssuerConfig{{
		Issuer: issuerA, Audiences: []string{audience}, PublicKeys: []string{abs}, Leeway: "5m",
	}}}, "/nonexistent")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tok := sign(t, jose.RS256, k.rsaPEM, "", with(claimsA(), map[string]any{"exp": testNow.Add(-4 * time.Minute).Unix()}))
	if _, err := v.Verify(tok, testNow); err != nil {
		t.Errorf("within a 5m leeway: %v", err)
	}
}

func TestNew_ConfigIsCopied(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rsa.pem"), pemPKIX(t, &k.rsaPEM.PublicKey))
	cfg := Config{Issuers: []IssuerConfig{{
		Issuer: issuerA, Audiences: []string{audience}, PublicKeys: []string{"rsa.pem"},
		AttributeClaims: map[string]string{"email": "email"},
	}}}
	v, err := New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuers[0].Audiences[0] = "changed"
	cfg.Issuers[0].AttributeClaims["email"] = "changed"
	id, err := v.Verify(sign(t, jose.RS256, k.rsaPEM, "", claimsA()), testNow)
	if err != nil {
		t.Fatalf("Verify after the caller changed its config: %v", err)
	}
	if id.Attributes["email"] != "alice@example.com" {
		t.Errorf("attributes = %q", id.Attributes)
	}
}

func algNames(algs []jose.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, " ")
}

func jwksJSON(t *testing.T, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return data
}
