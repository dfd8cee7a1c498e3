package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenSize is the largest token Verify looks at, in bytes; a larger one
// is rejected before it is parsed.
const MaxTokenSize = 16 << 10

// ErrInvalidToken is wrapped by every rejection of Verify. The wrapping
// error's text says why, for debug logs, and never contains the token.
var ErrInvalidToken = errors.New("exchange: invalid token")

// Identity is who a verified token names.
type Identity struct {
	// Issuer is the token's "iss", one of the configured issuers.
	Issuer string
	// Subject is the configured user-id claim's value: a non-empty string,
	// not otherwise checked (the caller validates it as a user id).
	Subject string
	// Scopes are the scope claim's scopes, sorted and deduplicated; nil if
	// none.
	Scopes []string
	// Attributes are the configured attribute claims present in the token:
	// strings as they are, other values as compact JSON; nil if none.
	Attributes map[string]string
	// ExpiresAt is the token's "exp" (always set, since exp is required).
	ExpiresAt time.Time
}

// Verifier verifies tokens of the configured issuers. It is immutable once
// built and safe for concurrent use.
type Verifier struct {
	issuers map[string]*issuer
}

// issuer is one trusted issuer, ready for verification.
type issuer struct {
	name        string
	audiences   jwt.Audience
	algorithms  []jose.SignatureAlgorithm
	leeway      time.Duration
	userIDClaim string
	scopeClaim  string
	attributes  map[string]string // attribute name -> claim name
	keys        []verifyKey
	kids        map[string]bool // the kids of keys
	kidless     bool            // some keys (all PEM keys) have no kid
}

// Load reads the trusted-issuers file (JSON) and the key files it names;
// relative key paths are relative to the config file's directory.
func Load(path string) (*Verifier, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := New(cfg, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// New builds a Verifier from an already-parsed config (for tests and
// embedding); baseDir resolves relative key paths. It reads every key file
// now, so that Verify reads none.
func New(cfg Config, baseDir string) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{issuers: make(map[string]*issuer, len(cfg.Issuers))}
	for i, ic := range cfg.Issuers {
		s, err := ic.settings(i)
		if err != nil {
			return nil, err
		}
		iss := &issuer{
			name:        ic.Issuer,
			audiences:   slices.Clone(ic.Audiences),
			algorithms:  s.algorithms,
			leeway:      s.leeway,
			userIDClaim: s.userIDClaim,
			scopeClaim:  s.scopeClaim,
			kids:        make(map[string]bool),
		}
		if len(ic.AttributeClaims) > 0 {
			iss.attributes = make(map[string]string, len(ic.AttributeClaims))
			for attr, claim := range ic.AttributeClaims {
				iss.attributes[attr] = claim
			}
		}
		if ic.JWKSFile != "" {
			keys, err := loadJWKS(resolve(baseDir, ic.JWKSFile))
			if err != nil {
				return nil, issuerErr(i, ic.Issuer, "jwks_file", "%v", err)
			}
			iss.keys = append(iss.keys, keys...)
		}
		for j, p := range ic.PublicKeys {
			keys, err := loadPEM(resolve(baseDir, p))
			if err != nil {
				return nil, issuerErr(i, ic.Issuer, fmt.Sprintf("public_keys[%d]", j), "%v", err)
			}
			iss.keys = append(iss.keys, keys...)
		}
		usable := false
		for _, k := range iss.keys {
			if k.kid != "" {
				iss.kids[k.kid] = true
			} else {
				iss.kidless = true
			}
			for _, alg := range iss.algorithms {
				usable = usable || k.fits(alg)
			}
		}
		if !usable {
			return nil, issuerErr(i, ic.Issuer, "jwks_file/public_keys",
				"no usable signing key for the algorithms %v (%d key(s) loaded)", iss.algorithms, len(iss.keys))
		}
		v.issuers[iss.name] = iss
	}
	return v, nil
}

func resolve(baseDir, path string) string {
	if filepath.IsAbs(path) || baseDir == "" {
		return path
	}
	return filepath.Join(baseDir, path)
}

// Issuers returns the configured issuers, sorted.
func (v *Verifier) Issuers() []string {
	names := make([]string, 0, len(v.issuers))
	for name := range v.issuers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Verify checks a compact JWS JWT at time now (the current time if zero) and
// returns who it names. Every rejection wraps ErrInvalidToken.
func (v *Verifier) Verify(token string, now time.Time) (Identity, error) {
	if len(token) > MaxTokenSize {
		return Identity{}, reject("token is larger than %d bytes", MaxTokenSize)
	}
	if now.IsZero() {
		now = time.Now()
	}
	jws, err := jose.ParseSignedCompact(token, asymmetricAlgorithms)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return Identity{}, reject("alg %s is not accepted", quote(string(algErr.Got)))
		}
		return Identity{}, reject("malformed token: not a compact JWS")
	}
	hdr := jws.Signatures[0].Header // the compact form has exactly one
	alg := jose.SignatureAlgorithm(hdr.Algorithm)
	for _, h := range []jose.HeaderKey{"crit", "b64"} {
		if _, ok := hdr.ExtraHeaders[h]; ok {
			return Identity{}, reject("header %q is not supported in a JWT", h)
		}
	}

	// The payload is read before the signature is checked only to pick the
	// issuer; nothing in it is trusted until then.
	claims, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return Identity{}, err
	}
	var issName string
	if raw, ok := claims["iss"]; !ok || isNull(raw) {
		return Identity{}, reject("iss claim is missing")
	} else if json.Unmarshal(raw, &issName) != nil {
		return Identity{}, reject("iss claim is not a string")
	}
	iss := v.issuers[issName]
	if iss == nil {
		return Identity{}, reject("iss %s is not a trusted issuer", quote(issName))
	}
	if !slices.Contains(iss.algorithms, alg) {
		return Identity{}, reject("alg %s is not accepted for issuer %q", alg, iss.name)
	}
	if err := iss.verifySignature(jws, hdr.KeyID, alg); err != nil {
		return Identity{}, err
	}
	return iss.identity(claims, now)
}

// verifySignature checks the signature with the issuer's keys for kid (all
// its keys if kid is empty) that fit alg.
func (iss *issuer) verifySignature(jws *jose.JSONWebSignature, kid string, alg jose.SignatureAlgorithm) error {
	if kid != "" && !iss.kids[kid] {
		hint := ""
		if iss.kidless {
			hint = " (keys without kid, as PEM keys, are used only for tokens without kid)"
		}
		return reject("unknown kid %s for issuer %q%s", quote(kid), iss.name, hint)
	}
	tried := 0
	for _, k := range iss.keys {
		if (kid != "" && k.kid != kid) || !k.fits(alg) {
			continue
		}
		tried++
		if _, err := jws.Verify(k.key); err == nil {
			return nil
		}
	}
	if tried == 0 {
		if kid != "" {
			return reject("issuer %q has no %s key with kid %s", iss.name, alg, quote(kid))
		}
		return reject("issuer %q has no %s key", iss.name, alg)
	}
	return reject("bad signature (issuer %q, alg %s)", iss.name, alg)
}

// identity checks the verified claims and builds the Identity.
func (iss *issuer) identity(claims map[string]json.RawMessage, now time.Time) (Identity, error) {
	c := jwt.Claims{Issuer: iss.name}
	if raw, ok := claims["aud"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &c.Audience) != nil {
			return Identity{}, reject("aud claim is neither a string nor an array of strings")
		}
	}
	var err error
	for _, d := range []struct {
		name string
		dst  **jwt.NumericDate
	}{{"exp", &c.Expiry}, {"nbf", &c.NotBefore}, {"iat", &c.IssuedAt}} {
		if *d.dst, err = numericDate(claims, d.name); err != nil {
			return Identity{}, err
		}
	}
	if c.Expiry == nil {
		return Identity{}, reject("exp claim is missing")
	}
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: iss.name, AnyAudience: iss.audiences, Time: now}, iss.leeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return Identity{}, reject("token expired at %s (leeway %s)", c.Expiry.Time().UTC().Format(time.RFC3339), iss.leeway)
	case errors.Is(err, jwt.ErrNotValidYet):
		return Identity{}, reject("token not valid before %s (leeway %s)", c.NotBefore.Time().UTC().Format(time.RFC3339), iss.leeway)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Identity{}, reject("token issued in the future at %s (leeway %s)", c.IssuedAt.Time().UTC().Format(time.RFC3339), iss.leeway)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Identity{}, reject("aud names none of issuer %q's audiences", iss.name)
	default:
		return Identity{}, reject("claims rejected: %v", err)
	}

	id := Identity{Issuer: iss.name, ExpiresAt: c.Expiry.Time().UTC()}
	raw, ok := claims[iss.userIDClaim]
	if !ok || isNull(raw) {
		return Identity{}, reject("user-id claim %q is missing", iss.userIDClaim)
	}
	if json.Unmarshal(raw, &id.Subject) != nil {
		return Identity{}, reject("user-id claim %q is not a string", iss.userIDClaim)
	}
	if id.Subject == "" {
		return Identity{}, reject("user-id claim %q is empty", iss.userIDClaim)
	}
	if raw, ok := claims[iss.scopeClaim]; ok && !isNull(raw) {
		if id.Scopes, err = parseScopes(raw); err != nil {
			return Identity{}, reject("scope claim %q %v", iss.scopeClaim, err)
		}
	}
	for attr, claim := range iss.attributes {
		raw, ok := claims[claim]
		if !ok || isNull(raw) {
			continue
		}
		var value string
		if json.Unmarshal(raw, &value) != nil {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) != nil {
				return Identity{}, reject("claim %q is malformed", claim)
			}
			value = buf.String()
		}
		if id.Attributes == nil {
			id.Attributes = make(map[string]string, len(iss.attributes))
		}
		id.Attributes[attr] = value
	}
	return id, nil
}

// decodeClaims decodes the payload as a JSON object, keeping each claim's
// raw value. Claim names match exactly (encoding/json's case-insensitive
// field matching is never involved).
func decodeClaims(payload []byte) (map[string]json.RawMessage, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, reject("malformed token: the payload is not a JSON object")
	}
	return claims, nil
}

// numericDate reads an optional NumericDate claim; null counts as missing.
func numericDate(claims map[string]json.RawMessage, name string) (*jwt.NumericDate, error) {
	raw, ok := claims[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var d jwt.NumericDate
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, reject("%s claim is not a NumericDate", name)
	}
	return &d, nil
}

// parseScopes reads a space-separated string or an array of strings; it
// returns the scopes sorted and deduplicated, nil if there are none.
func parseScopes(raw json.RawMessage) ([]string, error) {
	var scopes []string
	var s string
	if json.Unmarshal(raw, &s) == nil {
		scopes = strings.Fields(s)
	} else if json.Unmarshal(raw, &scopes) != nil {
		return nil, errors.New("is neither a string nor an array of strings")
	}
	scopes = slices.DeleteFunc(scopes, func(s string) bool { return s == "" })
	for _, s := range scopes {
		if strings.ContainsFunc(s, unicode.IsSpace) {
			return nil, errors.New("has an element with white space")
		}
	}
	if len(scopes) == 0 {
		return nil, nil
	}
	slices.Sort(scopes)
	return slices.Compact(scopes), nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// reject is a rejection wrapping ErrInvalidToken. Callers never pass the
// token or a whole segment of it.
func reject(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidToken}, args...)...)
}

// quote quotes an untrusted value from a token for an error text, cut to a
// short length so that a log line stays readable.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
