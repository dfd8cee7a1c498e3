package httpapi_test

// Token exchange (docs/logins.md#token-exchange, POST /v1/token/exchange) with
// a real trusted-issuers file and keys generated here, and the check that no
// secret of any kind reaches the logs.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/httpapi/exchange"
	"github.com/sessiond/sessiond/transport/testkit"
)

const (
	testIssuer   = "https://idp.example.test"
	testAudience = "sessiond"
	jwtType      = "urn:ietf:params:oauth:token-type:jwt"
)

// idpKeys are the identity provider's signing keys, generated once: RSA
// generation is slow under the race detector.
type idpKeys struct {
	rsa *rsa.PrivateKey   // JWKS kid "rsa-1", RS256
	ec  *ecdsa.PrivateKey // JWKS kid "ec-1", P-256
	// other is nobody's key, for bad signatures.
	other *ecdsa.PrivateKey
}

var sharedIDPKeys = sync.OnceValue(func() *idpKeys {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	newEC := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return &idpKeys{rsa: r, ec: newEC(), other: newEC()}
})

// idp is a trusted-issuers directory and the verifier loaded from it.
type idp struct {
	keys     *idpKeys
	verifier *exchange.Verifier
	// rsaPEM is the RSA public key in PEM form: the "secret" of the HS256
	// key-confusion attack.
	rsaPEM []byte
}

func newIDP(t testing.TB) *idp {
	t.Helper()
	k := sharedIDPKeys()
	dir := t.TempDir()
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.rsa.PublicKey, KeyID: "rsa-1", Use: "sig", Algorithm: "RS256"},
		{Key: &k.ec.PublicKey, KeyID: "ec-1", Use: "sig"},
	}}
	data, err := json.Marshal(jwks)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `{"issuers": [{
		"issuer": "` + testIssuer + `",
		"audiences": ["` + testAudience + `"],
		"jwks_file": "jwks.json",
		"algorithms": ["RS256", "ES256"],
		"attribute_claims": {"email": "email", "roles": "roles"}
	}]}`
	path := filepath.Join(dir, "trusted-issuers.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := exchange.Load(path)
	if err != nil {
		t.Fatalf("exchange.Load: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return &idp{keys: k, verifier: v, rsaPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
}

// claims are valid claims for sub at now; changes replace (nil deletes).
func idpClaims(sub string, now time.Time, changes map[string]any) map[string]any {
	c := map[string]any{
		"iss":   testIssuer,
		"aud":   []string{testAudience},
		"sub":   sub,
		"exp":   now.Add(5 * time.Minute).Unix(),
		"iat":   now.Add(-time.Minute).Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"scope": "write read",
		"email": sub + "@example.com",
		"roles": []string{"admin", "dev"},
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// signJWT signs claims with go-jose.
func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *idp) rs256(t testing.TB, claims map[string]any) string {
	return signJWT(t, jose.RS256, p.keys.rsa, "rsa-1", claims)
}

func (p *idp) es256(t testing.TB, claims map[string]any) string {
	return signJWT(t, jose.ES256, p.keys.ec, "ec-1", claims)
}

// handJWT assembles a compact JWS; sign computes the signature over the
// signing input (nil: an empty signature).
func handJWT(t testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

func withExchange(p *idp) func(*httpapi.Config) {
	return func(c *httpapi.Config) { c.Exchange = p.verifier }
}

// exchange posts a subject token.
func (a *testAPI) exchange(t testing.TB, token string, extra map[string]any, query string) response {
	t.Helper()
	body := map[string]any{"subject_token": token, "subject_token_type": jwtType}
	for k, v := range extra {
		body[k] = v
	}
	return a.do(t, http.MethodPost, "/v1/token/exchange"+query, body)
}

func TestExchange_AcceptsRS256AndES256FromATrustedIssuer(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	a := startServer(t, serverSetup{API: withExchange(p)})
	now := time.Now()
	for _, c := range []struct {
		name  string
		token string
		extra map[string]any
	}{
		{"RS256", p.rs256(t, idpClaims("alice", now, nil)), nil},
		{"ES256", p.es256(t, idpClaims("alice", now, nil)), map[string]any{
			"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "app": "web",
			"device": map[string]string{"label": "phone"},
		}},
		{"id_token type, scopes as an array", p.es256(t, idpClaims("alice", now, map[string]any{"scope": []string{"read", "write", "read"}})),
			map[string]any{"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}},
	} {
		r := a.exchange(t, c.token, c.extra, "")
		expectStatus(t, c.name, r, http.StatusCreated)
		var raw map[string]any
		json.Unmarshal(r.Body, &raw)
		for _, f := range []string{"session_id", "user_id", "access_token", "refresh_token", "token_type",
			"expires_in", "access_expires_at", "refresh_expires_at", "expires_at", "index"} {
			if _, ok := raw[f]; !ok {
				t.Errorf("%s: exchange answer lacks %q: %s", c.name, f, r.Body)
			}
		}
		if raw["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
			t.Errorf("%s: issued_token_type %v", c.name, raw["issued_token_type"])
		}
		tok := decode[tokenResponse](t, r)
		checkTokenShape(t, "access_token", tok.AccessToken, "sa_")
		if tok.UserID != "alice" || tok.TokenType != "Bearer" || headerIndex(t, r) != tok.Index {
			t.Errorf("%s: answer %s", c.name, r.Body)
		}
		s := a.expectValid(t, c.name+" session", tok.AccessToken)
		if s.AuthMethod != "exchange" || s.UserID != "alice" || !reflect.DeepEqual(s.Scopes, []string{"read", "write"}) ||
			!reflect.DeepEqual(s.Attributes, map[string]string{"email": "alice@example.com", "roles": `["admin","dev"]`}) {
			t.Errorf("%s: session %+v, want auth_method exchange, scopes [read write] and the configured claims as attributes", c.name, s)
		}
		if s.Device.IP != "127.0.0.1" {
			t.Errorf("%s: device %+v, want the peer's IP", c.name, s.Device)
		}
		if c.extra != nil && c.extra["app"] == "web" && (s.App != "web" || s.Device.Label != "phone") {
			t.Errorf("%s: app %q device %+v", c.name, s.App, s.Device)
		}
		expectStatus(t, c.name+" refresh", a.refresh(t, tok.RefreshToken), http.StatusOK)
	}
}

func TestExchange_EveryBadTokenIsTheSame401(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	clock := newClock()
	a := startServer(t, serverSetup{Clock: clock, API: withExchange(p)})
	now := clock.Now()
	valid := idpClaims("mallory", now, nil)
	good := p.rs256(t, valid)
	parts := strings.Split(good, ".")
	tamperedPayload, _ := json.Marshal(idpClaims("admin", now, nil))

	cases := []struct{ name, token string }{
		{"expired", p.rs256(t, idpClaims("mallory", now, map[string]any{"exp": now.Add(-5 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": nil}))},
		{"not yet valid", p.es256(t, idpClaims("mallory", now, map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}))},
		{"issued in the future", p.es256(t, idpClaims("mallory", now, map[string]any{"iat": now.Add(5 * time.Minute).Unix()}))},
		{"no exp", p.rs256(t, idpClaims("mallory", now, map[string]any{"exp": nil}))},
		{"wrong issuer", p.rs256(t, idpClaims("mallory", now, map[string]any{"iss": "https://evil.example.test"}))},
		{"issuer with a trailing slash", p.rs256(t, idpClaims("mallory", now, map[string]any{"iss": testIssuer + "/"}))},
		{"no issuer", p.rs256(t, idpClaims("mallory", now, map[string]any{"iss": nil}))},
		{"wrong audience", p.rs256(t, idpClaims("mallory", now, map[string]any{"aud": "another-app"}))},
		{"no audience", p.es256(t, idpClaims("mallory", now, map[string]any{"aud": nil}))},
		{"bad signature: payload changed", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]},
		{"bad signature: another key under a known kid", signJWT(t, jose.ES256, p.keys.other, "ec-1", valid)},
		{"bad signature: another key without kid", signJWT(t, jose.ES256, p.keys.other, "", valid)},
		{"alg none", handJWT(t, map[string]any{"alg": "none", "typ": "JWT"}, valid, nil)},
		{"alg none with kid", handJWT(t, map[string]any{"alg": "none", "kid": "rsa-1"}, valid, nil)},
		{"HS256 signed with the public key (PEM)", handJWT(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, valid, hmacWith(p.rsaPEM))},
		{"HS256 signed with the public key (DER)", handJWT(t, map[string]any{"alg": "HS256"}, valid, hmacWith(mustDER(t, p)))},
		{"RS256 with the EC key's kid", signJWT(t, jose.RS256, p.keys.rsa, "ec-1", valid)},
		{"unknown kid", signJWT(t, jose.RS256, p.keys.rsa, "rsa-2", valid)},
		{"an algorithm the issuer does not accept", signJWT(t, jose.PS256, p.keys.rsa, "rsa-1", valid)},
		{"no subject", p.rs256(t, idpClaims("mallory", now, map[string]any{"sub": nil}))},
		{"empty subject", p.rs256(t, idpClaims("mallory", now, map[string]any{"sub": ""}))},
		{"garbage", "not-a-jwt"},
		{"two parts", parts[0] + "." + parts[1]},
		{"a sessiond access token", a.create(t, "mallory", nil).AccessToken},
	}
	var first response
	for i, c := range cases {
		r := a.exchange(t, c.token, nil, "")
		expectError(t, c.name, r, http.StatusUnauthorized, "unauthenticated")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", c.name, r.Header.Get("WWW-Authenticate"))
		}
		if i == 0 {
			first = r
		} else if !bytes.Equal(r.Body, first.Body) {
			t.Errorf("%s answered %s, the expired token %s: want one identical body", c.name, r.Body, first.Body)
		}
	}
	for _, user := range []string{"mallory", "admin"} {
		r := a.admin(t, http.MethodGet, "/v1/users/"+user+"/sessions", nil)
		if n := len(decode[sessionList](t, r).Sessions); n > 1 || user == "admin" && n != 0 {
			t.Errorf("%s has %d sessions after refused exchanges", user, n)
		}
	}
	// The genuine token still works, and expires on the node's clock.
	expectStatus(t, "the genuine token", a.exchange(t, good, nil, ""), http.StatusCreated)
	clock.Advance(6 * time.Minute)
	expectError(t, "the genuine token after its exp on the node clock", a.exchange(t, good, nil, ""), http.StatusUnauthorized, "unauthenticated")
}

func hmacWith(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

func mustDER(t testing.TB, p *idp) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&p.keys.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestExchange_BadRequestsAre400(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	a := startServer(t, serverSetup{API: withExchange(p)})
	good := p.rs256(t, idpClaims("alice", time.Now(), nil))
	for _, c := range []struct {
		name    string
		body    map[string]any
		mention string
	}{
		{"no subject_token", map[string]any{"subject_token_type": jwtType}, "subject_token"},
		{"empty subject_token", map[string]any{"subject_token": "", "subject_token_type": jwtType}, "subject_token"},
		{"no subject_token_type", map[string]any{"subject_token": good}, "subject_token_type"},
		{"SAML subject_token_type", map[string]any{"subject_token": good, "subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "subject_token_type"},
		{"refresh_token subject_token_type", map[string]any{"subject_token": good, "subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "subject_token_type"},
		{"wrong grant_type", map[string]any{"subject_token": good, "subject_token_type": jwtType, "grant_type": "password"}, "grant_type"},
		{"unknown field", map[string]any{"subject_token": good, "subject_token_type": jwtType, "audience": "x"}, "audience"},
		{"bad app", map[string]any{"subject_token": good, "subject_token_type": jwtType, "app": "a b"}, "app"},
	} {
		expectError(t, c.name, a.do(t, http.MethodPost, "/v1/token/exchange", c.body), http.StatusBadRequest, "bad_request", c.mention)
	}
	expectError(t, "form body", a.do(t, http.MethodPost, "/v1/token/exchange",
		testkit.Raw("subject_token="+good+"&subject_token_type="+jwtType), "Content-Type", "application/x-www-form-urlencoded"),
		http.StatusUnsupportedMediaType, "unsupported_media_type")
	// A subject that is not a valid user id is refused, not stored.
	expectError(t, "subject with a space", a.exchange(t, p.rs256(t, idpClaims("al ice", time.Now(), nil)), nil, ""),
		http.StatusBadRequest, "bad_request")
	expectStatus(t, "the good token after the refusals", a.exchange(t, good, nil, ""), http.StatusCreated)
}

func TestExchange_WithoutTrustedIssuersIs401(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	a := startServer(t, serverSetup{})
	expectError(t, "exchange on a node that trusts no issuer", a.exchange(t, p.rs256(t, idpClaims("alice", time.Now(), nil)), nil, ""),
		http.StatusUnauthorized, "unauthenticated")
}

func TestExchange_SessionLimitsApply(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	a := startServer(t, serverSetup{API: withExchange(p)})
	a.putLimit(t, "alice", 1)
	now := time.Now()
	r := a.exchange(t, p.rs256(t, idpClaims("alice", now, nil)), nil, "")
	expectStatus(t, "first exchange", r, http.StatusCreated)
	first := decode[tokenResponse](t, r)
	expectLimit(t, "second exchange over the user's limit", a.exchange(t, p.es256(t, idpClaims("alice", now, nil)), nil, ""), first)
	r = a.exchange(t, p.es256(t, idpClaims("alice", now, nil)), map[string]any{"end_sessions": []string{first.SessionID}}, "")
	expectStatus(t, "exchange ending the first session", r, http.StatusCreated)
	a.expectInvalid(t, "session ended by the exchange", first.AccessToken)
	a.expectValid(t, "exchanged session", decode[tokenResponse](t, r).AccessToken)

	a.putPolicy(t, map[string]any{"app_max_sessions": map[string]int{"web": 1}})
	a.putLimit(t, "bob", nil)
	web := decode[tokenResponse](t, a.exchange(t, p.rs256(t, idpClaims("bob", now, nil)), map[string]any{"app": "web"}, ""))
	expectLimit(t, "exchange over the app limit", a.exchange(t, p.rs256(t, idpClaims("bob", now, nil)), map[string]any{"app": "web"}, ""), web)
}

func TestExchange_SetsCookiesWhenAsked(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	keys := testCookieKeys(t)
	a := startServer(t, serverSetup{API: func(c *httpapi.Config) {
		c.Exchange = p.verifier
		c.CookieKeys = keys
	}})
	r := a.exchange(t, p.es256(t, idpClaims("alice", time.Now(), nil)), map[string]any{"remember_me": true}, "?cookie=true")
	expectStatus(t, "exchange with cookies", r, http.StatusCreated)
	tok := decode[tokenResponse](t, r)
	b := newBrowser(false)
	if !b.take(t, r) || unsign(b.session) != tok.AccessToken || unsign(b.refresh) != tok.RefreshToken {
		t.Fatalf("exchange with cookies set %v", r.Header.Values("Set-Cookie"))
	}
	parsed, _ := setCookies(t, r)
	if c := parsed[b.sessionName]; !c.Secure || !c.HttpOnly || c.MaxAge <= 0 {
		t.Errorf("remember-me exchange cookie %+v, want Secure, HttpOnly, persistent", c)
	}
	r = a.withBrowser(t, http.MethodGet, "/v1/session", b)
	expectStatus(t, "GET /v1/session with the exchange's cookie", r, http.StatusOK)
	if s := decode[sessionInfo](t, r); s.AuthMethod != "exchange" || !s.RememberMe {
		t.Errorf("session %+v", s)
	}
}

// --- Secrets never logged ------------------------------------------------

func TestLogs_NeverHoldASecret(t *testing.T) {
	t.Parallel()
	var logs testkit.SyncBuffer
	p := newIDP(t)
	keys := testCookieKeys(t)
	clock := newClock()
	a := startServer(t, serverSetup{
		Clock:  clock,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		API: func(c *httpapi.Config) {
			c.Exchange = p.verifier
			c.CookieKeys = keys
		},
	})
	secrets := map[string]string{"admin key": testAPIKey, "cookie key": testCookieKey}
	addToken := func(what string, tok tokenResponse) {
		secrets[what+" access token"] = tok.AccessToken
		secrets[what+" refresh token"] = tok.RefreshToken
		// The random part alone, in case a prefix is cut off.
		secrets[what+" access token body"] = tok.AccessToken[3:]
		secrets[what+" refresh token body"] = tok.RefreshToken[3:]
	}
	addHash := func(what, user string) {
		h := a.passwordHash(t, user)
		secrets[what+" hash"] = h
		secrets[what+" hash key"] = h[strings.LastIndexByte(h, '$')+1:]
		parts := strings.Split(h, "$")
		secrets[what+" hash salt"] = parts[len(parts)-2]
	}
	addCookies := func(what string, r response) {
		for name, c := range func() map[string]*http.Cookie { m, _ := setCookies(t, r); return m }() {
			if c.Value != "" {
				secrets[what+" cookie "+name] = c.Value
				secrets[what+" cookie mac "+name] = c.Value[strings.LastIndexByte(c.Value, '.')+1:]
			}
		}
	}
	addJWT := func(what, jwt string) {
		secrets[what+" JWT"] = jwt
		parts := strings.Split(jwt, ".")
		secrets[what+" JWT payload"] = parts[1]
		if parts[2] != "" {
			secrets[what+" JWT signature"] = parts[2]
		}
	}

	// Users and passwords.
	const pw1, pw2, wrong = "first-Secret-passw0rd", "second-Secret-passw0rd", "wrong-Secret-passw0rd"
	secrets["password 1"], secrets["password 2"], secrets["wrong password"] = pw1, pw2, wrong
	a.putPolicy(t, map[string]any{"lockout": map[string]any{"max_failures": 2, "window": "15m", "duration": "15m"}, "idle_timeout": "1h"})
	a.putUser(t, "alice", "alice@example.com", pw1)
	addHash("password 1", "alice")
	b := newBrowser(false)
	r := a.do(t, http.MethodPost, "/v1/login?cookie=true", map[string]any{"email": "alice@example.com", "password": pw1})
	expectStatus(t, "login", r, http.StatusCreated)
	login := decode[tokenResponse](t, r)
	addToken("login", login)
	addCookies("login", r)
	b.take(t, r)
	expectError(t, "wrong password", a.login(t, map[string]any{"email": "alice@example.com", "password": wrong}), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "unknown user", a.login(t, map[string]any{"user_id": "nobody", "password": wrong}), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "wrong password again", a.login(t, map[string]any{"user_id": "alice", "password": wrong}), http.StatusUnauthorized, "unauthenticated")
	expectError(t, "locked", a.login(t, map[string]any{"user_id": "alice", "password": pw1}), http.StatusLocked, "account_locked")
	expectStatus(t, "unlock", a.admin(t, http.MethodPost, "/v1/users/alice/unlock", nil), http.StatusOK)
	expectStatus(t, "password change", a.admin(t, http.MethodPut, "/v1/users/alice/password", map[string]string{"password": pw2, "reason": "change"}), http.StatusOK)
	addHash("password 2", "alice")
	expectError(t, "bad password rejected", a.admin(t, http.MethodPut, "/v1/users/bob", map[string]string{"password": "short"}), http.StatusBadRequest, "bad_request")
	second := a.loginOK(t, "login with the new password", map[string]any{"user_id": "alice", "password": pw2})
	addToken("second login", second)

	// Refresh, introspection, revocation, validation.
	refreshed := a.refreshOK(t, "refresh", second.RefreshToken)
	addToken("refreshed", refreshed)
	a.expectValid(t, "refreshed", refreshed.AccessToken)
	a.introspect(t, refreshed.RefreshToken)
	expectError(t, "reuse", a.refresh(t, second.RefreshToken), http.StatusUnauthorized, "unauthenticated")
	expectStatus(t, "auth", a.do(t, http.MethodGet, "/v1/auth", nil, "Authorization", "Bearer "+refreshed.AccessToken), http.StatusUnauthorized)

	// Exchange, good and bad.
	good := p.rs256(t, idpClaims("carol", clock.Now(), nil))
	addJWT("good", good)
	r = a.exchange(t, good, nil, "?cookie=true")
	expectStatus(t, "exchange", r, http.StatusCreated)
	ex := decode[tokenResponse](t, r)
	addToken("exchange", ex)
	addCookies("exchange", r)
	for name, bad := range map[string]string{
		"expired":   p.es256(t, idpClaims("carol", clock.Now(), map[string]any{"exp": clock.Now().Add(-time.Hour).Unix()})),
		"audience":  p.es256(t, idpClaims("carol", clock.Now(), map[string]any{"aud": "x"})),
		"signature": signJWT(t, jose.ES256, p.keys.other, "ec-1", idpClaims("carol", clock.Now(), nil)),
		"none":      handJWT(t, map[string]any{"alg": "none"}, idpClaims("carol", clock.Now(), nil), nil),
		"kid":       signJWT(t, jose.ES256, p.keys.ec, "kid-with-a-secret-looking-value", idpClaims("carol", clock.Now(), nil)),
	} {
		addJWT(name, bad)
		expectError(t, "bad exchange "+name, a.exchange(t, bad, nil, ""), http.StatusUnauthorized, "unauthenticated")
	}

	// Cookies: use, automatic refresh, logout.
	expectStatus(t, "cookie", a.withBrowser(t, http.MethodGet, "/v1/session", b), http.StatusUnauthorized) // revoked by the password change
	cb := newBrowser(false)
	cb.take(t, r)
	expectStatus(t, "cookie session", a.withBrowser(t, http.MethodGet, "/v1/session", cb), http.StatusOK)
	clock.Advance(defaultTTL + time.Second)
	r = a.withBrowser(t, http.MethodGet, "/v1/auth", cb)
	expectStatus(t, "cookie auto-refresh", r, http.StatusOK)
	addCookies("auto-refresh", r)
	cb.take(t, r)
	secrets["auto-refreshed access token"] = unsign(cb.session)
	secrets["auto-refreshed refresh token"] = unsign(cb.refresh)
	expectStatus(t, "cookie logout", a.withBrowser(t, http.MethodDelete, "/v1/session", cb), http.StatusNoContent)
	expectStatus(t, "revoke", a.do(t, http.MethodPost, "/v1/revoke", map[string]string{"token": ex.RefreshToken}), http.StatusOK)
	// The idle timeout's batched uses are written by a background loop.
	last := a.create(t, "dave", nil)
	addToken("last", last)
	clock.Advance(10 * time.Minute)
	a.expectValid(t, "a used session", last.AccessToken)
	a.waitForLastSeen(t, last.SessionID, clock.Now())
	expectStatus(t, "delete user", a.admin(t, http.MethodDelete, "/v1/users/alice", nil), http.StatusOK)

	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "route=/v1/login") || !strings.Contains(out, "route=/v1/token/exchange") {
		t.Fatalf("the logs hold no debug request lines: the check would prove nothing")
	}
	for what, secret := range secrets {
		if secret == "" {
			t.Fatalf("no value for %s", what)
		}
		if strings.Contains(out, secret) {
			i := strings.Index(out, secret)
			start, end := max(0, i-200), min(len(out), i+len(secret)+50)
			t.Errorf("the logs hold the %s: …%s…", what, out[start:end])
		}
	}
	t.Logf("checked %d secrets against %d bytes of debug logs", len(secrets), len(out))
}
