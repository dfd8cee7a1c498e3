package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/sessiond/sessiond/httpapi"
)

// One client address sending logins faster than the limit gets 429
// rate_limited with a Retry-After; the requests under it are answered as
// usual (here 401, a wrong password).
func TestLoginRate_LimitsOneAddress(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverSetup{API: func(cfg *httpapi.Config) {
		cfg.LoginRate = httpapi.LoginRate{PerSecond: 0.5, Burst: 3}
	}})
	a.putPolicy(t, map[string]any{"lockout": map[string]any{"max_failures": 0}})
	body := map[string]any{"user_id": "nobody", "password": "wrong password here"}
	for i := range 3 {
		expectError(t, "login "+strconv.Itoa(i+1)+" within the burst", a.do(t, http.MethodPost, "/v1/login", body), http.StatusUnauthorized, "unauthenticated")
	}
	r := a.do(t, http.MethodPost, "/v1/login", body)
	expectError(t, "login over the rate", r, http.StatusTooManyRequests, "rate_limited")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Errorf("Retry-After %q, want 1–2 seconds (one login per 2 s)", r.Header.Get("Retry-After"))
	}
	// Token exchange shares the limit: the address is still over it.
	ex := map[string]any{"subject_token": "x", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
	expectError(t, "exchange over the rate", a.do(t, http.MethodPost, "/v1/token/exchange", ex), http.StatusTooManyRequests, "rate_limited")
	// Other routes are not limited.
	for range 5 {
		expectStatus(t, "create", a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "u"}), http.StatusCreated)
	}
}
