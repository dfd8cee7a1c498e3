package httpapi

import (
	"bytes"
	stdjson "encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// limitsRequest is the body putLimits declares inline.
type limitsRequest struct {
	MaxSessions jsontext.Value `json:"max_sessions"`
}

// requestTypes are fresh values of every request body the API decodes.
var requestTypes = []func() any{
	func() any { return new(createSessionRequest) },
	func() any { return new(refreshRequest) },
	func() any { return new(bulkRevokeRequest) },
	func() any { return new(forceLogoutRequest) },
	func() any { return new(tokenRequest) },
	func() any { return new(loginRequest) },
	func() any { return new(exchangeRequest) },
	func() any { return new(putUserRequest) },
	func() any { return new(putPasswordRequest) },
	func() any { return new(putPolicyRequest) },
	func() any { return new(putLockoutRequest) },
	func() any { return new(limitsRequest) },
}

// legacyDecodeJSON is the decoder the API used before: encoding/json with
// unknown fields refused (but names matched case-insensitively and a
// repeated name taking the last value).
func legacyDecodeJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return io.ErrUnexpectedEOF
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return io.ErrUnexpectedEOF
	}
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// decodeCorpus are bodies every request type of the API may be sent; each
// decodes (into some type) as it did with encoding/json.
var decodeCorpus = []string{
	`{}`,
	` { } `,
	`{"user_id":"alice","app":"web","scopes":["read","write"],"attributes":{"role":"admin","é":"\u00e9"},"remember_me":true,"device":{"user_agent":"curl/8","ip":"::1","label":"laptop"}}`,
	`{"user_id":"alice","app":null,"scopes":null,"attributes":null,"remember_me":null,"device":null}`,
	`{"user_id":"u","scopes":[],"attributes":{},"device":{}}`,
	`{"user_id":"u","scopes":[null,"a"],"attributes":{"k":null}}`,
	`{"user_id":"u\"\\\/\b\f\n\r\t\u2028\ud83d\ude00"}`,
	`{"refresh_token":"sr_x"}`,
	`{"created_before":"2026-01-02T03:04:05Z","apps":["web","default"]}`,
	`{"created_before":"2026-01-02T03:04:05.123456789+05:30"}`,
	`{"created_before":null,"apps":null}`,
	`{"reason":"password_reset","except":"sid"}`,
	`{"reason":null,"except":null}`,
	`{"token":"sa_x","token_type_hint":"access_token"}`,
	`{"email":"a@example.com","password":"pw","app":"web","remember_me":false,"end_sessions":["s1","s2"]}`,
	`{"user_id":"alice","password":"pw","end_sessions":null}`,
	`{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","subject_token":"x.y.z","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","app":"web"}`,
	`{"password":"pw","reason":"reset"}`,
	`{"access_ttl":"15m","refresh_ttl":null,"refresh_ttl_follows_access":true,"absolute_ttl":"720h","idle_timeout":"0s","sliding_refresh":false,"remember_me_ttl":"720h","max_sessions_per_user":0,"app_max_sessions":{"web":3},"on_session_limit":"deny","lockout":{"max_failures":5,"window":"15m","duration":"15m"},"force_logout_on_password_change":true,"refresh_reuse_grace":"0s"}`,
	`{"lockout":null,"app_max_sessions":null,"max_sessions_per_user":null}`,
	`{"lockout":{ "max_failures" : 1 } }`,
	`{"max_failures":3,"window":"1m","duration":"1h"}`,
	`{"max_sessions":5}`,
	`{"max_sessions":null}`,
	`{"max_sessions":-0}`,
	`{"max_sessions":"5"}`,
}

func TestDecodeJSON_DecodesValidBodiesAsBefore(t *testing.T) {
	accepted := map[string]int{}
	for _, body := range decodeCorpus {
		for _, newValue := range requestTypes {
			legacy, strict := newValue(), newValue()
			legacyErr := legacyDecodeJSON([]byte(body), legacy)
			strictErr := decodeJSON([]byte(body), strict)
			what := reflect.TypeOf(legacy).Elem().Name() + " from " + body
			if (legacyErr == nil) != (strictErr == nil) {
				t.Errorf("%s: encoding/json error %v, decodeJSON error %v", what, legacyErr, strictErr)
				continue
			}
			if strictErr == nil {
				accepted[body]++
				if !reflect.DeepEqual(legacy, strict) {
					t.Errorf("%s: decoded %+v, encoding/json decoded %+v", what, strict, legacy)
				}
			}
		}
	}
	for _, body := range decodeCorpus {
		if accepted[body] == 0 {
			t.Errorf("no request type accepts %s: the corpus entry tests nothing", body)
		}
	}
}

func TestDecodeJSON_MessagesNameTheField(t *testing.T) {
	for _, c := range []struct {
		body string
		into any
		want string
	}{
		{`{"user_id":5}`, new(createSessionRequest), `field "user_id" must be a string`},
		{`{"remember_me":"yes"}`, new(createSessionRequest), `field "remember_me" must be true or false`},
		{`{"scopes":"read"}`, new(createSessionRequest), `field "scopes" must be an array of strings`},
		{`{"scopes":["a",1]}`, new(createSessionRequest), `field "scopes.1" must be a string`},
		{`{"attributes":{"k":1}}`, new(createSessionRequest), `field "attributes.k" must be a string`},
		{`{"device":"laptop"}`, new(createSessionRequest), `field "device" must be an object`},
		{`{"device":{"label":true}}`, new(createSessionRequest), `field "device.label" must be a string`},
		{`{"created_before":"yesterday"}`, new(bulkRevokeRequest), `field "created_before" must be an RFC 3339 time`},
		{`{"created_before":1700000000}`, new(bulkRevokeRequest), `field "created_before" must be an RFC 3339 time`},
		{`{"max_sessions_per_user":1.5}`, new(putPolicyRequest), `field "max_sessions_per_user" must be an integer`},
		{`{"max_sessions_per_user":1e100}`, new(putPolicyRequest), `field "max_sessions_per_user" must be an integer`},
		{`{"app_max_sessions":{"web":"3"}}`, new(putPolicyRequest), `field "app_max_sessions.web" must be an integer`},
		{`{"USER_ID":"u"}`, new(createSessionRequest), `unknown field "USER_ID"`},
		{`{"user_id":"u","App":"web"}`, new(createSessionRequest), `unknown field "App"`},
		{`{"device":{"os":"linux"}}`, new(createSessionRequest), `unknown field "device.os"`},
		{`{"user_id":"a","user_id":"b"}`, new(createSessionRequest), `duplicate field "user_id"`},
		{`{"device":{"ip":"a","ip":"b"}}`, new(createSessionRequest), `duplicate field "device.ip"`},
		{`{"attributes":{"k":"1","k":"2"}}`, new(createSessionRequest), `duplicate field "attributes.k"`},
		{`{"lockout":{"window":"1m","window":"2m"}}`, new(putPolicyRequest), `duplicate field "lockout.window"`},
		{`{"max_sessions":1,"max_sessions":2}`, new(limitsRequest), `duplicate field "max_sessions"`},
		{`{"user_id":`, new(createSessionRequest), "unexpected end of input"},
		{`{"user_id" "u"}`, new(createSessionRequest), "syntax error at byte 11: invalid character"},
		{`{"user_id":"u",}`, new(createSessionRequest), "syntax error at byte"},
		{`{"user_id":"\ud800"}`, new(createSessionRequest), "syntax error at byte"},
		{`{"user_id":"u"} {"user_id":"v"}`, new(createSessionRequest), "unexpected data after the object"},
		{`{"user_id":"u"}x`, new(createSessionRequest), "unexpected data after the object"},
		{`["u"]`, new(createSessionRequest), "the body must be a JSON object"},
		{`null`, new(createSessionRequest), "the body must be a JSON object"},
		{"{\"user_id\":\"\xff\"}", new(createSessionRequest), "not valid UTF-8"},
	} {
		err := decodeJSON([]byte(c.body), c.into)
		if err == nil {
			t.Errorf("%s: accepted", c.body)
			continue
		}
		ae := toAPIError(err)
		if ae == nil || ae.Code != codeBadRequest || !strings.Contains(ae.Message, c.want) {
			t.Errorf("%s: %v, want bad_request saying %q", c.body, err, c.want)
		}
	}
}

// FuzzDecodeJSON checks that decodeJSON never panics and only ever accepts
// what encoding/json accepted, decoded to the same value: it is strictly
// stricter than the decoder it replaced.
func FuzzDecodeJSON(f *testing.F) {
	for _, body := range decodeCorpus {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"user_id":"a","user_id":"b"}`))
	f.Add([]byte(`{"USER_ID":"u","App":"web"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newValue := range requestTypes {
			strict := newValue()
			if decodeJSON(body, strict) != nil {
				continue
			}
			legacy := newValue()
			if err := legacyDecodeJSON(body, legacy); err != nil {
				t.Fatalf("%T: decodeJSON accepted %q, encoding/json refused it: %v", strict, body, err)
			}
			if !reflect.DeepEqual(legacy, strict) {
				t.Fatalf("%T from %q: decoded %+v, encoding/json decoded %+v", strict, body, strict, legacy)
			}
		}
	})
}
