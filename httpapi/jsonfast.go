package httpapi

import (
	"sort"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// The session answer of token validation is the API's hottest body. It is
// written by hand here rather than through encoding/json's reflection,
// which end to end gives follower validation about 5% more throughput
// (docs/benchmarks.md, 2026-12-07, morning); tests check that it decodes
// exactly like json.Marshal's output for the same value.

var fastBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// writeSessionJSON answers status with v as its JSON body, not to be
// stored by caches.
func writeSessionJSON(c echo.Context, status int, v *sessionJSON) error {
	noStore(c)
	return writeFastJSON(c, status, func(b []byte) []byte { return appendSessionJSON(b, v) })
}

// writeFastJSON answers status with the JSON body appendBody writes, in a
// pooled buffer.
func writeFastJSON(c echo.Context, status int, appendBody func([]byte) []byte) error {
	bp := fastBufs.Get().(*[]byte)
	b := appendBody((*bp)[:0])
	b = append(b, '\n') // as echo's JSON encoder ends its bodies
	err := c.Blob(status, echo.MIMEApplicationJSON, b)
	if cap(b) <= 64<<10 {
		*bp = b
		fastBufs.Put(bp)
	}
	return err
}

func appendSessionJSON(b []byte, v *sessionJSON) []byte {
	b = append(b, `{"session_id":`...)
	b = appendJSONString(b, v.SessionID)
	b = append(b, `,"user_id":`...)
	b = appendJSONString(b, v.UserID)
	b = append(b, `,"app":`...)
	b = appendJSONString(b, v.App)
	b = append(b, `,"auth_method":`...)
	b = appendJSONString(b, v.AuthMethod)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, v.Status)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, v.CreatedAt)
	b = append(b, `,"last_seen_at":`...)
	b = appendJSONTime(b, v.LastSeenAt)
	b = append(b, `,"access_expires_at":`...)
	b = appendJSONTime(b, v.AccessExpiresAt)
	b = append(b, `,"refresh_expires_at":`...)
	b = appendJSONTime(b, v.RefreshExpiresAt)
	b = append(b, `,"expires_at":`...)
	b = appendJSONTime(b, v.ExpiresAt)
	b = append(b, `,"remember_me":`...)
	b = strconv.AppendBool(b, v.RememberMe)
	b = append(b, `,"scopes":`...)
	if v.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range v.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"attributes":`...)
	if v.Attributes == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(v.Attributes))
		for k := range v.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, v.Attributes[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"device":{"user_agent":`...)
	b = appendJSONString(b, v.Device.UserAgent)
	b = append(b, `,"ip":`...)
	b = appendJSONString(b, v.Device.IP)
	b = append(b, `,"label":`...)
	b = appendJSONString(b, v.Device.Label)
	b = append(b, '}')
	if v.RevokedAt != nil {
		b = append(b, `,"revoked_at":`...)
		b = appendJSONTime(b, *v.RevokedAt)
	}
	if v.RevokeReason != "" {
		b = append(b, `,"revoke_reason":`...)
		b = appendJSONString(b, v.RevokeReason)
	}
	return append(b, '}')
}

func appendJSONTime(b []byte, t apiTime) []byte {
	b = append(b, '"')
	b = t.appendText(b)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does by default: control
// characters, quote and backslash escaped, <, > and & as \u escapes (safe
// inside HTML), U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
