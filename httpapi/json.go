package httpapi

import (
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sessiond/sessiond/fsm"
	"github.com/sessiond/sessiond/node"
)

// Times leave the API as RFC 3339 in UTC with millisecond precision.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

type apiTime int64 // Unix nanoseconds

// MarshalText (rather than MarshalJSON, whose output encoding/json checks
// and compacts again) keeps the five times of a session answer cheap.
func (t apiTime) MarshalText() ([]byte, error) {
	return t.appendText(make([]byte, 0, len(timeLayout))), nil
}

// appendText appends the time as timeLayout does. Every session answer
// holds five or six times, and time.Time.AppendFormat, which parses its
// layout each call, was about a twentieth of a follower's validation CPU;
// this writes the digits directly from 1970 on (Unix nanoseconds end in
// 2262) and leaves earlier times to AppendFormat.
func (t apiTime) appendText(b []byte) []byte {
	if t < 0 {
		return time.Unix(0, int64(t)).UTC().AppendFormat(b, timeLayout)
	}
	ms := int64(t) / int64(time.Millisecond)
	days, rest := ms/86400000, ms%86400000
	year, month, day := civilFromDays(days)
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, month, 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, rest/3600000, 2)
	b = append(b, ':')
	b = appendDigits(b, rest/60000%60, 2)
	b = append(b, ':')
	b = appendDigits(b, rest/1000%60, 2)
	b = append(b, '.')
	b = appendDigits(b, rest%1000, 3)
	return append(b, 'Z')
}

// civilFromDays turns days since 1970-01-01 (not negative) into a
// proleptic Gregorian date (H. Hinnant's civil_from_days).
func civilFromDays(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends v (not negative) zero-padded to width digits.
func appendDigits(b []byte, v int64, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

type deviceJSON struct {
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	Label     string `json:"label"`
}

type sessionJSON struct {
	SessionID        string            `json:"session_id"`
	UserID           string            `json:"user_id"`
	App              string            `json:"app"`
	AuthMethod       string            `json:"auth_method"`
	Status           string            `json:"status"`
	CreatedAt        apiTime           `json:"created_at"`
	LastSeenAt       apiTime           `json:"last_seen_at"`
	AccessExpiresAt  apiTime           `json:"access_expires_at"`
	RefreshExpiresAt apiTime           `json:"refresh_expires_at"`
	ExpiresAt        apiTime           `json:"expires_at"`
	RememberMe       bool              `json:"remember_me"`
	Scopes           []string          `json:"scopes"`
	Attributes       map[string]string `json:"attributes"`
	Device           deviceJSON        `json:"device"`
	RevokedAt        *apiTime          `json:"revoked_at,omitempty"`
	RevokeReason     string            `json:"revoke_reason,omitempty"`
}

// toSessionJSON shows a session with the status the node judged it at.
func toSessionJSON(s fsm.Session, status fsm.Status) sessionJSON {
	out := sessionJSON{
		SessionID:        string(s.ID()),
		UserID:           string(s.UserID),
		App:              s.App(),
		AuthMethod:       s.AuthMethod.String(),
		Status:           status.String(),
		CreatedAt:        apiTime(s.CreatedAt),
		LastSeenAt:       apiTime(s.LastSeenAt),
		AccessExpiresAt:  apiTime(s.AccessExpiresAt),
		RefreshExpiresAt: apiTime(s.RefreshExpiresAt),
		ExpiresAt:        apiTime(s.ExpiresAt),
		RememberMe:       s.RememberMe,
		Scopes:           s.Scopes(),
		Attributes:       make(map[string]string, len(s.Attributes())),
		Device:           deviceJSON{UserAgent: s.UserAgent(), IP: s.IP(), Label: s.Label()},
	}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	for _, a := range s.Attributes() {
		out.Attributes[a.Key] = a.Value
	}
	if s.Revoked() {
		at := apiTime(s.RevokedAt())
		out.RevokedAt = &at
		out.RevokeReason = s.RevokeReason().String()
	}
	return out
}

type tokenJSON struct {
	SessionID        string  `json:"session_id"`
	UserID           string  `json:"user_id"`
	AccessToken      string  `json:"access_token"`
	RefreshToken     string  `json:"refresh_token"`
	TokenType        string  `json:"token_type"`
	ExpiresIn        int64   `json:"expires_in"`
	AccessExpiresAt  apiTime `json:"access_expires_at"`
	RefreshExpiresAt apiTime `json:"refresh_expires_at"`
	ExpiresAt        apiTime `json:"expires_at"`
	Index            uint64  `json:"index"`
	// IssuedTokenType is RFC 8693's issued_token_type, only in the answer
	// of a token exchange.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// writeTokenJSON answers status with the token pair v, not to be stored by
// caches; issuedTokenType, when not empty, is RFC 8693's issued_token_type
// of a token exchange.
func writeTokenJSON(c echo.Context, status int, v *tokenJSON, issuedTokenType string) error {
	noStore(c)
	v.IssuedTokenType = issuedTokenType
	return c.JSON(status, v)
}

// noStore forbids caches to keep the answer: every answer that carries a
// token, and every session or introspection answer (RFC 6749 §5.1).
func noStore(c echo.Context) {
	c.Response().Header()[echo.HeaderCacheControl] = []string{"no-store"}
}

func toTokenJSON(is node.Issued, now int64) tokenJSON {
	s := is.Session
	return tokenJSON{
		SessionID:        string(s.ID()),
		UserID:           string(s.UserID),
		AccessToken:      is.AccessToken,
		RefreshToken:     is.RefreshToken,
		TokenType:        "Bearer",
		ExpiresIn:        max(0, (s.AccessExpiresAt-now)/int64(time.Second)),
		AccessExpiresAt:  apiTime(s.AccessExpiresAt),
		RefreshExpiresAt: apiTime(s.RefreshExpiresAt),
		ExpiresAt:        apiTime(s.ExpiresAt),
		Index:            is.Index.N,
	}
}

// introspectionJSON is RFC 7662's answer plus "status", an extension for
// admin callers that is present on inactive tokens too.
type introspectionJSON struct {
	Active    bool   `json:"active"`
	Status    string `json:"status"`
	TokenType string `json:"token_type,omitempty"`
	Sub       string `json:"sub,omitempty"`
	SID       string `json:"sid,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Scope     string `json:"scope,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
}

func toIntrospectionJSON(info node.TokenInfo) introspectionJSON {
	out := introspectionJSON{Active: info.Status == fsm.StatusActive, Status: info.Status.String()}
	switch info.Kind {
	case fsm.TokenAccess:
		out.TokenType = "access_token"
	case fsm.TokenRefresh:
		out.TokenType = "refresh_token"
	}
	if !out.Active {
		return out
	}
	s := info.Session
	out.Sub = string(s.UserID)
	out.SID = string(s.ID())
	out.ClientID = s.App()
	out.Scope = strings.Join(s.Scopes(), " ")
	out.Iat = s.TokensIssuedAt / int64(time.Second)
	if info.Kind == fsm.TokenAccess {
		out.Exp = min(s.AccessExpiresAt, s.ExpiresAt) / int64(time.Second)
	} else {
		out.Exp = min(s.RefreshExpiresAt, s.ExpiresAt) / int64(time.Second)
	}
	return out
}

type policyJSON struct {
	AccessTTL                   string         `json:"access_ttl"`
	RefreshTTL                  string         `json:"refresh_ttl"`
	RefreshTTLFollowsAccess     bool           `json:"refresh_ttl_follows_access"`
	AbsoluteTTL                 string         `json:"absolute_ttl"`
	IdleTimeout                 string         `json:"idle_timeout"`
	SlidingRefresh              bool           `json:"sliding_refresh"`
	RememberMeTTL               string         `json:"remember_me_ttl"`
	MaxSessionsPerUser          int            `json:"max_sessions_per_user"`
	AppMaxSessions              map[string]int `json:"app_max_sessions"`
	OnSessionLimit              string         `json:"on_session_limit"`
	Lockout                     lockoutJSON    `json:"lockout"`
	ForceLogoutOnPasswordChange bool           `json:"force_logout_on_password_change"`
	RefreshReuseGrace           string         `json:"refresh_reuse_grace"`
}

type lockoutJSON struct {
	MaxFailures int    `json:"max_failures"`
	Window      string `json:"window"`
	Duration    string `json:"duration"`
}

func toPolicyJSON(p fsm.Policy) policyJSON {
	out := policyJSON{
		AccessTTL:                   p.AccessTTL.String(),
		RefreshTTL:                  p.EffectiveRefreshTTL().String(),
		RefreshTTLFollowsAccess:     p.RefreshFollowsAccess(),
		AbsoluteTTL:                 p.AbsoluteTTL.String(),
		IdleTimeout:                 p.IdleTimeout.String(),
		SlidingRefresh:              p.SlidingRefresh,
		RememberMeTTL:               p.RememberMeTTL.String(),
		MaxSessionsPerUser:          p.MaxSessionsPerUser,
		AppMaxSessions:              make(map[string]int, len(p.AppMaxSessions)),
		OnSessionLimit:              p.OnSessionLimit,
		Lockout:                     lockoutJSON{MaxFailures: p.Lockout.MaxFailures, Window: p.Lockout.Window.String(), Duration: p.Lockout.Duration.String()},
		ForceLogoutOnPasswordChange: p.ForceLogoutOnPasswordChange,
		RefreshReuseGrace:           p.RefreshReuseGrace.String(),
	}
	for _, l := range p.AppMaxSessions {
		out.AppMaxSessions[l.App] = l.MaxSessions
	}
	return out
}
