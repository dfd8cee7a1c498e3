package httpapi

import (
	"strings"
	"unicode/utf8"
)

// Limits of docs/api.md#input-limits.
const (
	maxIDLength        = 128
	maxScopes          = 32
	maxScopeLength     = 128
	maxAttributesBytes = 4096
	maxDeviceField     = 512
)

// checkID validates a user_id, app or similar identifier: 1–128 characters
// of [A-Za-z0-9._@:+-].
func checkID(field, v string) error {
	if v == "" || len(v) > maxIDLength {
		return badRequest("%s must be 1–%d characters", field, maxIDLength)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("._@:+-", c) >= 0) {
			return badRequest("%s may contain only letters, digits and ._@:+-", field)
		}
	}
	return nil
}

// checkText validates free text: valid UTF-8, no NUL, at most max bytes.
func checkText(field, v string, max int) error {
	if len(v) > max {
		return badRequest("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return badRequest("%s must be valid UTF-8 without NUL", field)
	}
	return nil
}

// checkScopes validates scopes: at most 32, each 1–128 characters of the
// RFC 6749 scope-token alphabet (printable ASCII but space, " and \).
func checkScopes(scopes []string) error {
	if len(scopes) > maxScopes {
		return badRequest("scopes: at most %d", maxScopes)
	}
	for _, s := range scopes {
		if s == "" || len(s) > maxScopeLength {
			return badRequest("scopes: each must be 1–%d characters", maxScopeLength)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return badRequest("scopes: %q has a character outside the scope alphabet", s)
			}
		}
	}
	return nil
}

// checkAttributes validates attributes: keys non-empty, all text valid, at
// most 4096 bytes counting keys and values.
func checkAttributes(attrs map[string]string) error {
	total := 0
	for k, v := range attrs {
		if k == "" {
			return badRequest("attributes: keys must not be empty")
		}
		if err := checkText("attributes", k, maxAttributesBytes); err != nil {
			return err
		}
		if err := checkText("attributes", v, maxAttributesBytes); err != nil {
			return err
		}
		total += len(k) + len(v)
	}
	if total > maxAttributesBytes {
		return badRequest("attributes: %d bytes, at most %d counting keys and values", total, maxAttributesBytes)
	}
	return nil
}

// appOrDefault is the app a session request names: "default" when the
// request left app out (or sent null); a value it gives, "" included, must
// be a valid id.
func appOrDefault(app *string) (string, error) {
	if app == nil {
		return "default", nil
	}
	if err := checkID("app", *app); err != nil {
		return "", err
	}
	return *app, nil
}
