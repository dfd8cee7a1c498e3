package exchange

import (
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerify_AcceptsValidTokens(t *testing.T) {
	f := newFixture(t)
	k := f.keys
	tests := []struct {
		name string
		alg  jose.SignatureAlgorithm
		key  any
		kid  string
	}{
		{"RS256 with kid from JWKS", jose.RS256, k.rsaJWKS, "rsa-1"},
		{"ES256 with kid from JWKS", jose.ES256, k.ecJWKS, "ec-1"},
		{"EdDSA with kid from JWKS", jose.EdDSA, k.edJWKS, "ed-1"},
		{"RS256 without kid from PEM", jose.RS256, k.rsaPEM, ""},
		{"ES256 without kid from PEM", jose.ES256, k.ecPEM, ""},
		{"EdDSA without kid, JWKS key tried", jose.EdDSA, k.edJWKS, ""},
		{"PS256 without kid from PEM", jose.PS256, k.rsaPEM, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, tt.alg, tt.key, tt.kid, claimsA())
			id, err := f.v.Verify(tok, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{
				Issuer:  issuerA,
				Subject: "alice",
				Scopes:  []string{"read", "write"},
				Attributes: map[string]string{
					"email": "alice@example.com",
					"roles": `["admin","dev"]`,
				},
				ExpiresAt: testNow.Add(5 * time.Minute),
			}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity:\n got %+v\nwant %+v", id, want)
			}
		})
	}
}

func TestVerify_ScopesAndAttributes(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name      string
		changes   map[string]any
		wantScope []string
		wantAttrs map[string]string
	}{
		{
			name:      "scope as an array, duplicates removed, sorted",
			changes:   map[string]any{"scope": []string{"write", "read", "write", ""}},
			wantScope: []string{"read", "write"},
		},
		{
			name:      "scope string with extra spaces",
			changes:   map[string]any{"scope": "  b   a\tc "},
			wantScope: []string{"a", "b", "c"},
		},
		{
			name:    "no scope claim, null scope, empty string all mean none",
			changes: map[string]any{"scope": nil},
		},
		{
			name:    "empty scope string",
			changes: map[string]any{"scope": ""},
		},
		{
			name: "numbers, booleans and objects are JSON-encoded; null and missing left out",
			changes: map[string]any{
				"scope": nil, "email": nil, "roles": nil,
				"age": 42, "admin": true, "nickname": nil,
				"org": map[string]any{"id": 7, "name": "Acme"},
			},
			wantAttrs: map[string]string{"age": "42", "admin": "true", "org": `{"id":7,"name":"Acme"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, jose.RS256, f.keys.rsaJWKS, "rsa-1", with(claimsA(), tt.changes))
			id, err := f.v.Verify(tok, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(id.Scopes, tt.wantScope) {
				t.Errorf("scopes = %q, want %q", id.Scopes, tt.wantScope)
			}
			if tt.wantAttrs != nil && !reflect.DeepEqual(id.Attributes, tt.wantAttrs) {
				t.Errorf("attributes = %q, want %q", id.Attributes, tt.wantAttrs)
			}
		})
	}
}

func TestVerify_NullAttributeIsAbsent(t *testing.T) {
	f := newFixture(t)
	// A JSON null cannot be built through a map[string]any with nil (with()
	// deletes), so hand-build the token with a real signature.
	claims := with(claimsA(), map[string]any{"email": nil, "roles": nil, "scope": nil})
	tok := handBuilt(t, map[string]any{"alg": "EdDSA", "kid": "ed-1"},
		with(claims, map[string]any{"nickname": jsonNull{}}),
		func(in []byte) []byte { return edSign(f.keys, in) })
	id, err := f.v.Verify(tok, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Attributes != nil {
		t.Errorf("attributes = %q, want none", id.Attributes)
	}
}

func TestVerify_CustomClaimNames(t *testing.T) {
	f := newFixture(t)
	claims := map[string]any{
		"iss": issuerB, "aud": audience, "exp": testNow.Add(time.Minute).Unix(),
		"sub": "ignored", "oid": "00000000-aaaa", "scp": []string{"files.read"}, "scope": "ignored",
	}
	id, err := f.v.Verify(sign(t, jose.RS256, f.keys.rsaOther, "", claims), testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Issuer != issuerB || id.Subject != "00000000-aaaa" || !reflect.DeepEqual(id.Scopes, []string{"files.read"}) || id.Attributes != nil {
		t.Errorf("identity = %+v", id)
	}
}

func TestVerify_Rejects(t *testing.T) {
	f := newFixture(t)
	k := f.keys
	rs := func(claims map[string]any) string { return sign(t, jose.RS256, k.rsaJWKS, "rsa-1", claims) }
	changed := func(changes map[string]any) string { return rs(with(claimsA(), changes)) }
	big := strings.Repeat("x", MaxTokenSize)

	tests := []struct {
		name  string
		token string
		why   string // a part of the error text
	}{
		{"empty", "", "malformed"},
		{"garbage", "not a token", "malformed"},
		{"two parts", "abc.def", "malformed"},
		{"JWS JSON serialization", `{"payload":"e30","signatures":[]}`, "malformed"},
		{"payload not an object", handBuilt(t, map[string]any{"alg": "RS256"}, nil, nil), "payload"},
		{"expired", changed(map[string]any{"exp": testNow.Add(-time.Minute).Unix()}), "expired"},
		{"not yet valid (nbf)", changed(map[string]any{"nbf": testNow.Add(time.Minute).Unix()}), "not valid before"},
		{"iat in the future", changed(map[string]any{"iat": testNow.Add(time.Minute).Unix()}), "issued in the future"},
		{"exp missing", changed(map[string]any{"exp": nil}), "exp claim is missing"},
		{"exp not a number", changed(map[string]any{"exp": "tomorrow"}), "exp claim"},
		{"unknown issuer", changed(map[string]any{"iss": "https://evil.example"}), "not a trusted issuer"},
		{"issuer with trailing slash", changed(map[string]any{"iss": issuerA + "/"}), "not a trusted issuer"},
		{"iss missing", changed(map[string]any{"iss": nil}), "iss claim is missing"},
		{"iss not a string", changed(map[string]any{"iss": 1}), "iss claim is not a string"},
		{"wrong audience", changed(map[string]any{"aud": "someone-else"}), "aud"},
		{"audience missing", changed(map[string]any{"aud": nil}), "aud"},
		{"subject missing", changed(map[string]any{"sub": nil}), "missing"},
		{"subject not a string", changed(map[string]any{"sub": 42}), "not a string"},
		{"subject empty", changed(map[string]any{"sub": ""}), "empty"},
		{"scope of the wrong type", changed(map[string]any{"scope": 3}), "scope"},
		{"scope element with white space", changed(map[string]any{"scope": []string{"a b"}}), "scope"},
		{"bad signature: signed by another key with a known kid", sign(t, jose.RS256, k.attacker, "rsa-1", claimsA()), "bad signature"},
		{"bad signature: signed by another key without kid", sign(t, jose.RS256, k.attacker, "", claimsA()), "bad signature"},
		{"bad signature: another trusted issuer's key", sign(t, jose.RS256, k.rsaOther, "", claimsA()), "bad signature"},
		{"tampered payload", tamper(t, rs(claimsA())), "bad signature"},
		{"unknown kid", sign(t, jose.RS256, k.rsaJWKS, "rsa-2", claimsA()), "unknown kid"},
		{"kid of a skipped encryption key", sign(t, jose.RS256, k.rsaEnc, "enc-1", claimsA()), "unknown kid"},
		{"kid of a PEM-only key's token", sign(t, jose.RS256, k.rsaPEM, "pem", claimsA()), "used only for tokens without kid"},
		{"alg does not fit the kid's key type", sign(t, jose.ES256, k.ecJWKS, "rsa-1", claimsA()), "no ES256 key"},
		{"alg does not fit the JWK's own alg", sign(t, jose.PS256, k.rsaJWKS, "rsa-1", claimsA()), "no PS256 key with kid"},
		{"alg not accepted for any issuer", sign(t, jose.RS384, k.rsaJWKS, "rsa-1", claimsA()), "not accepted"},
		{"alg not in the issuer's list", sign(t, jose.ES256, k.ecJWKS, "", with(claimsA(), map[string]any{"iss": issuerB})), "not accepted for issuer"},
		{"alg none", handBuilt(t, map[string]any{"alg": "none", "typ": "JWT"}, claimsA(), nil), "alg"},
		{"alg none with kid", handBuilt(t, map[string]any{"alg": "none", "kid": "rsa-1"}, claimsA(), nil), "alg"},
		{"HS256 keyed with the issuer's PEM public key", handBuilt(t, map[string]any{"alg": "HS256", "typ": "JWT"}, claimsA(), hs256(f.rsaPEMFile)), "alg"},
		{"HS256 keyed with the issuer's DER public key and a kid", handBuilt(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, claimsA(), hs256(derPKIX(t, f))), "alg"},
		{"crit header", handBuilt(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}, claimsA(), nil), "crit"},
		{"oversized", changed(map[string]any{"pad": big}), "larger than"},
		{"oversized garbage", big + big, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.v.Verify(tt.token, testNow)
			if err == nil {
				t.Fatalf("accepted: %+v", id)
			}
			t.Logf("rejected: %v", err)
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %q does not wrap ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not say %q", err, tt.why)
			}
			assertNoTokenInError(t, err, tt.token)
			if !reflect.DeepEqual(id, Identity{}) {
				t.Errorf("identity %+v returned with an error", id)
			}
		})
	}
}

// assertNoTokenInError checks the error names neither the token nor any of
// its long segments.
func assertNoTokenInError(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	if token != "" && strings.Contains(msg, token) {
		t.Errorf("error contains the token: %q", msg)
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 && strings.Contains(msg, seg) {
			t.Errorf("error contains a token segment %q", seg)
		}
	}
}

func TestVerify_LeewayHonouredOnBothSides(t *testing.T) {
	f := newFixture(t)
	// Issuer A has the default leeway of 30s; issuer B has "0s".
	tests := []struct {
		name   string
		iss    string
		change map[string]any
		ok     bool
	}{
		{"exp 20s ago within leeway", issuerA, map[string]any{"exp": testNow.Add(-20 * time.Second).Unix()}, true},
		{"exp 40s ago beyond leeway", issuerA, map[string]any{"exp": testNow.Add(-40 * time.Second).Unix()}, false},
		{"nbf in 20s within leeway", issuerA, map[string]any{"nbf": testNow.Add(20 * time.Second).Unix()}, true},
		{"nbf in 40s beyond leeway", issuerA, map[string]any{"nbf": testNow.Add(40 * time.Second).Unix()}, false},
		{"iat in 20s within leeway", issuerA, map[string]any{"iat": testNow.Add(20 * time.Second).Unix()}, true},
		{"iat in 40s beyond leeway", issuerA, map[string]any{"iat": testNow.Add(40 * time.Second).Unix()}, false},
		{"zero leeway: exp 1s ago", issuerB, map[string]any{"exp": testNow.Add(-time.Second).Unix()}, false},
		{"zero leeway: nbf in 1s", issuerB, map[string]any{"nbf": testNow.Add(time.Second).Unix()}, false},
		{"zero leeway: exp in 1s", issuerB, map[string]any{"exp": testNow.Add(time.Second).Unix()}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tok string
			if tt.iss == issuerA {
				tok = sign(t, jose.ES256, f.keys.ecJWKS, "ec-1", with(claimsA(), tt.change))
			} else {
				claims := with(claimsA(), map[string]any{"iss": issuerB, "oid": "bob", "iat": nil, "nbf": nil})
				tok = sign(t, jose.RS256, f.keys.rsaOther, "", with(claims, tt.change))
			}
			_, err := f.v.Verify(tok, testNow)
			if tt.ok && err != nil {
				t.Errorf("rejected: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidToken) {
				t.Errorf("got %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerify_KeyFileFormats(t *testing.T) {
	k := sharedKeys()
	dir := t.TempDir()
	writeFile(t, dir+"/cert.pem", pemCertificate(t, k.ecPEM))
	writeFile(t, dir+"/multi.pem", append(pemPKIX(t, &k.rsaPEM.PublicKey), pemPKIX(t, k.edJWKS.Public())...))
	v, err := New(Config{Issuers: []IssuerConfig{{
		Issuer: issuerA, Audiences: []string{audience},
		PublicKeys: []string{"cert.pem", "multi.pem"},
	}}}, dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for name, tok := range map[string]string{
		"certificate":         sign(t, jose.ES256, k.ecPEM, "", claimsA()),
		"second PEM block":    sign(t, jose.EdDSA, k.edJWKS, "", claimsA()),
		"first of two blocks": sign(t, jose.RS256, k.rsaPEM, "", claimsA()),
	} {
		if _, err := v.Verify(tok, testNow); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerify_ConcurrentUse(t *testing.T) {
	f := newFixture(t)
	good := sign(t, jose.ES256, f.keys.ecJWKS, "ec-1", claimsA())
	bad := sign(t, jose.ES256, f.keys.ecPEM, "ec-1", claimsA())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := f.v.Verify(good, testNow); err != nil {
					t.Errorf("goroutine %d: %v", i, err)
					return
				}
				if _, err := f.v.Verify(bad, testNow); err == nil {
					t.Errorf("goroutine %d: bad token accepted", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVerifier_Issuers(t *testing.T) {
	f := newFixture(t)
	if got, want := f.v.Issuers(), []string{issuerA, issuerB}; !reflect.DeepEqual(got, want) {
		t.Errorf("Issuers() = %q, want %q", got, want)
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(sign(f, jose.RS256, fx.keys.rsaJWKS, "rsa-1", claimsA()))
	f.Add(sign(f, jose.EdDSA, fx.keys.edJWKS, "", claimsA()))
	f.Add(handBuilt(f, map[string]any{"alg": "none"}, claimsA(), nil))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := fx.v.Verify(token, testNow)
		if err == nil {
			if id.Subject == "" || id.Issuer == "" || id.ExpiresAt.IsZero() {
				t.Fatalf("accepted with an incomplete identity %+v", id)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %q does not wrap ErrInvalidToken", err)
		}
		if len(token) > 80 && strings.Contains(err.Error(), token) {
			t.Fatalf("error contains the token")
		}
	})
}

// tamper changes one character of the payload, keeping it valid base64url
// and valid JSON (the subject's last letter).
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	claims := with(claimsA(), map[string]any{"sub": "alicf"})
	forged := handBuilt(t, map[string]any{"alg": "RS256"}, claims, nil)
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

func derPKIX(t *testing.T, f *fixture) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&f.keys.rsaPEM.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// jsonNull marshals as JSON null.
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }
