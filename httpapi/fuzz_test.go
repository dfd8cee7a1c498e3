package httpapi

import (
	"bytes"
	stdjson "encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// fuzzEcho makes the contexts of the fuzz targets.
var fuzzEcho = echo.New()

// bindTokenBody runs bindTokenRequest on a POST with this content type and
// body, as /v1/introspect and /v1/revoke do.
func bindTokenBody(contentType string, body []byte) (tokenRequest, error) {
	req := httptest.NewRequest(http.MethodPost, "/v1/introspect", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	c := fuzzEcho.NewContext(req, httptest.NewRecorder())
	return bindTokenRequest(c)
}

// FuzzBindTokenRequest checks the form and JSON bodies of introspection
// and revocation: no panic; a refusal is a 400, 413 or 415 API error; an
// accepted request has a token of 1 to 4096 bytes and reads the same when
// sent in the other encoding.
func FuzzBindTokenRequest(f *testing.F) {
	const form, js = echo.MIMEApplicationForm, echo.MIMEApplicationJSON
	f.Add(form, []byte("token=sa_abc&token_type_hint=access_token"))
	f.Add(form+"; charset=utf-8", []byte("token=sr_%2Bx%20y"))
	f.Add(form, []byte("token=a&token=b&token_type_hint="))
	f.Add(form, []byte("token=a&other=1"))
	f.Add(form, []byte("token=%zz"))
	f.Add(js, []byte(`{"token":"sa_abc","token_type_hint":"refresh_token"}`))
	f.Add(js, []byte(`{"token":"a","token":"b"}`))
	f.Add("text/plain", []byte("token=a"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := bindTokenBody(contentType, body)
		if err != nil {
			ae := toAPIError(err)
			if ae == nil {
				t.Fatalf("refusal %v is not an API error", err)
			}
			switch ae.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("refusal with status %d: %v", ae.Status, err)
			}
			return
		}
		if req.Token == "" || len(req.Token) > 4096 {
			t.Fatalf("accepted a token of %d bytes", len(req.Token))
		}
		if !utf8.ValidString(req.Token) || !utf8.ValidString(req.TokenTypeHint) {
			return // a form's %-escapes can spell any bytes; JSON cannot carry them
		}
		var again tokenRequest
		if mt, _, _ := mime.ParseMediaType(contentType); strings.ToLower(mt) == js {
			again, err = bindTokenBody(form, []byte(url.Values{"token": {req.Token}, "token_type_hint": {req.TokenTypeHint}}.Encode()))
		} else {
			data, merr := stdjson.Marshal(map[string]string{"token": req.Token, "token_type_hint": req.TokenTypeHint})
			if merr != nil {
				t.Fatal(merr)
			}
			again, err = bindTokenBody(js, data)
		}
		if err != nil || again != req {
			t.Fatalf("%q read as %+v; in the other encoding it reads as %+v (%v)", body, req, again, err)
		}
	})
}

// FuzzPolicyFromRequest checks PUT /v1/policy's decoding and duration
// parsing: no panic; a refusal is a 400; an accepted policy is valid, and
// its GET form, sent back as a PUT, gives the same policy.
func FuzzPolicyFromRequest(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"access_ttl":"15m","refresh_ttl":"36h","absolute_ttl":"720h","idle_timeout":"30m","remember_me_ttl":"720h","refresh_reuse_grace":"10s"}`))
	f.Add([]byte(`{"refresh_ttl":"1h","refresh_ttl_follows_access":true,"max_sessions_per_user":3,"app_max_sessions":{"web":2,"mobile":1},"on_session_limit":"evict_oldest"}`))
	f.Add([]byte(`{"lockout":{"max_failures":3,"window":"1m30s","duration":"1h"},"sliding_refresh":true,"force_logout_on_password_change":false}`))
	f.Add([]byte(`{"lockout":null,"refresh_ttl":null,"idle_timeout":"0s"}`))
	f.Add([]byte(`{"access_ttl":"1.5h","absolute_ttl":"-1m"}`))
	f.Add([]byte(`{"access_ttl":"9223372036854775807ns"}`))
	f.Add([]byte(`{"lockout":[1]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		refused := func(err error) {
			if ae := toAPIError(err); ae == nil || ae.Status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400", err)
			}
		}
		var req putPolicyRequest
		if err := decodeJSON(body, &req); err != nil {
			refused(err)
			return
		}
		p, err := policyFromRequest(req)
		if err != nil {
			refused(err)
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid policy %+v: %v", p, err)
		}
		got, err := stdjson.Marshal(toPolicyJSON(p))
		if err != nil {
			t.Fatal(err)
		}
		var again putPolicyRequest
		if err := decodeJSON(got, &again); err != nil {
			t.Fatalf("the GET form %s does not decode as a PUT: %v", got, err)
		}
		p2, err := policyFromRequest(again)
		if err != nil {
			t.Fatalf("the GET form %s is refused as a PUT: %v", got, err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("%s gave %+v; its GET form %s gives %+v", body, p, got, p2)
		}
	})
}
