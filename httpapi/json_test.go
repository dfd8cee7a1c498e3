package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// The token pair answer (create, refresh, login, exchange) byte for byte:
// field order, HTML-safe escaping, millisecond UTC times, issued_token_type
// only on an exchange, and never cached.
func TestWriteTokenJSON_TheTokenPairAnswer(t *testing.T) {
	v := tokenJSON{
		SessionID: "s_1", UserID: "alice <a&b>", AccessToken: "sa_access", RefreshToken: "sr_refresh", TokenType: "Bearer",
		ExpiresIn: 900, AccessExpiresAt: 1764000900000000000, RefreshExpiresAt: 1764001000123000000,
		ExpiresAt: 1766592000000000000, Index: 42,
	}
	const pair = `{"session_id":"s_1","user_id":"alice \u003ca\u0026b\u003e","access_token":"sa_access",` +
		`"refresh_token":"sr_refresh","token_type":"Bearer","expires_in":900,"access_expires_at":"2025-11-24T16:15:00.000Z",` +
		`"refresh_expires_at":"2025-11-24T16:16:40.123Z","expires_at":"2025-12-24T16:00:00.000Z","index":42`
	for _, c := range []struct {
		name, issuedTokenType, want string
	}{
		{"create", "", pair + "}\n"},
		{"exchange", "urn:ietf:params:oauth:token-type:access_token",
			pair + `,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}` + "\n"},
	} {
		rec := httptest.NewRecorder()
		ctx := echo.New().NewContext(httptest.NewRequest(http.MethodPost, "/", nil), rec)
		body := v
		if err := writeTokenJSON(ctx, http.StatusCreated, &body, c.issuedTokenType); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusCreated {
			t.Errorf("%s: status %d", c.name, rec.Code)
		}
		if got := rec.Body.String(); got != c.want {
			t.Errorf("%s: body\n got  %s\n want %s", c.name, got, c.want)
		}
		if ct := rec.Header().Values(echo.HeaderContentType); len(ct) != 1 || ct[0] != echo.MIMEApplicationJSON {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		if cc := rec.Header().Values(echo.HeaderCacheControl); len(cc) != 1 || cc[0] != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", c.name, cc)
		}
	}
}
