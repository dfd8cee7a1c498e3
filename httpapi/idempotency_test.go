package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// A client retrying a write with the same Idempotency-Key has it applied
// once: a retried create answers 409 instead of making a second session,
// a retried revocation answers as the first did, at the same index.
func TestIdempotencyKey_RetriedWritesApplyOnce(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	body := map[string]any{"user_id": "alice"}
	first := a.admin(t, http.MethodPost, "/v1/sessions", body, "Idempotency-Key", "create-1")
	expectStatus(t, "create", first, http.StatusCreated)
	tok := decode[tokenResponse](t, first)
	again := a.admin(t, http.MethodPost, "/v1/sessions", body, "Idempotency-Key", "create-1")
	msg := expectError(t, "create retried with the same key", again, http.StatusConflict, "conflict", "Idempotency-Key")
	if want := "index " + first.Header.Get("X-Sessiond-Index"); !strings.Contains(msg, want) {
		t.Errorf("409 message %q does not name the first write's index (%s)", msg, want)
	}
	list := decode[struct {
		Sessions []sessionInfo `json:"sessions"`
	}](t, a.admin(t, http.MethodGet, "/v1/users/alice/sessions", nil))
	if len(list.Sessions) != 1 || list.Sessions[0].SessionID != tok.SessionID {
		t.Fatalf("after a retried create alice has %d sessions, want the first one only", len(list.Sessions))
	}
	a.expectValid(t, "the first create's token", tok.AccessToken)

	// Another key is another write.
	expectStatus(t, "create with another key", a.admin(t, http.MethodPost, "/v1/sessions", body, "Idempotency-Key", "create-2"), http.StatusCreated)

	// A revocation retried: the same answer and index, applied once.
	r1 := a.admin(t, http.MethodDelete, "/v1/sessions/"+tok.SessionID, nil, "Idempotency-Key", "revoke-1")
	r2 := a.admin(t, http.MethodDelete, "/v1/sessions/"+tok.SessionID, nil, "Idempotency-Key", "revoke-1")
	expectStatus(t, "revoke", r1, http.StatusNoContent)
	expectStatus(t, "revoke retried", r2, http.StatusNoContent)
	if i1, i2 := r1.Header.Get("X-Sessiond-Index"), r2.Header.Get("X-Sessiond-Index"); i1 != i2 {
		t.Errorf("retried revocation answered index %s, the first %s", i2, i1)
	}

	// A refresh retried after it applied: its new tokens went to the first
	// attempt, so the retry is refused rather than counted as reuse.
	second := decode[tokenResponse](t, a.admin(t, http.MethodPost, "/v1/sessions", body))
	ref := map[string]any{"refresh_token": second.RefreshToken}
	rr1 := a.do(t, http.MethodPost, "/v1/refresh", ref, "Idempotency-Key", "refresh-1")
	expectStatus(t, "refresh", rr1, http.StatusOK)
	rotated := decode[tokenResponse](t, rr1)
	rr2 := a.do(t, http.MethodPost, "/v1/refresh", ref, "Idempotency-Key", "refresh-1")
	expectError(t, "refresh retried with the same key", rr2, http.StatusConflict, "conflict")
	a.expectValid(t, "the session after a retried refresh", rotated.AccessToken)
}

func TestIdempotencyKey_MalformedIsRefused(t *testing.T) {
	t.Parallel()
	a := startAPI(t)
	tok := decode[tokenResponse](t, a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "carol"}))
	// A token or key as the key would land in the Raft log: refused.
	for _, key := range []string{"has space", strings.Repeat("x", 65), "a/b", "key?", tok.AccessToken, tok.RefreshToken, testAPIKey} {
		r := a.admin(t, http.MethodPost, "/v1/sessions", map[string]any{"user_id": "bob"}, "Idempotency-Key", key)
		expectError(t, "key "+key, r, http.StatusBadRequest, "bad_request", "Idempotency-Key")
	}
	if n := len(a.node.UserSessions("bob")); n != 0 {
		t.Errorf("refused requests made %d sessions", n)
	}
}
