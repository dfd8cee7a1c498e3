package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults and limits of the trusted-issuers file.
const (
	// DefaultLeeway is the clock skew allowed when an issuer sets no leeway.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest leeway an issuer may set.
	MaxLeeway = 5 * time.Minute
	// DefaultUserIDClaim is the claim naming the user when an issuer sets none.
	DefaultUserIDClaim = "sub"
	// DefaultScopeClaim is the claim holding the scopes when an issuer sets none.
	DefaultScopeClaim = "scope"
	// maxFileSize bounds every file read: the config and each key file.
	maxFileSize = 1 << 20
	// minRSABits is the smallest RSA modulus accepted for a verification key.
	minRSABits = 2048
)

// ErrInvalidConfig is wrapped by every error about the trusted-issuers file
// or the key files it names.
var ErrInvalidConfig = errors.New("exchange: invalid trusted-issuers config")

// DefaultAlgorithms returns the algorithms accepted when an issuer lists none.
func DefaultAlgorithms() []string { return []string{"RS256", "ES256", "EdDSA"} }

// asymmetricAlgorithms are the only algorithms a config may name.
var asymmetricAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Config is the trusted-issuers file (see the package documentation).
type Config struct {
	// Issuers are the identity providers whose tokens are accepted: at least
	// one, each issuer value at most once.
	Issuers []IssuerConfig `json:"issuers"`
}

// IssuerConfig is one trusted identity provider.
type IssuerConfig struct {
	// Issuer is compared exactly with the token's "iss" claim. Required.
	Issuer string `json:"issuer"`
	// Audiences: the token's "aud" must contain at least one. Required.
	Audiences []string `json:"audiences"`
	// JWKSFile is a JWK Set file with the issuer's public keys.
	JWKSFile string `json:"jwks_file,omitempty"`
	// PublicKeys are PEM files with the issuer's public keys (or
	// certificates). At least one usable key, here or in JWKSFile, is required.
	PublicKeys []string `json:"public_keys,omitempty"`
	// Algorithms are the accepted "alg" values, asymmetric only. Nil means
	// DefaultAlgorithms; an empty non-nil list is an error.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway is a Go duration, the clock skew allowed for exp, nbf and iat.
	// Empty means DefaultLeeway; at most MaxLeeway.
	Leeway string `json:"leeway,omitempty"`
	// UserIDClaim names the claim holding the user id. Empty means
	// DefaultUserIDClaim.
	UserIDClaim string `json:"user_id_claim,omitempty"`
	// ScopeClaim names the claim holding the scopes. Empty means
	// DefaultScopeClaim.
	ScopeClaim string `json:"scope_claim,omitempty"`
	// AttributeClaims maps an attribute name to the claim copied into it.
	AttributeClaims map[string]string `json:"attribute_claims,omitempty"`
}

// Validate checks everything in the config that needs no file: required
// fields, algorithms, leeway and claim names. New calls it.
func (c Config) Validate() error {
	if len(c.Issuers) == 0 {
		return fmt.Errorf("%w: issuers: at least one issuer is required", ErrInvalidConfig)
	}
	seen := make(map[string]int, len(c.Issuers))
	for i, ic := range c.Issuers {
		if prev, dup := seen[ic.Issuer]; dup && ic.Issuer != "" {
			return issuerErr(i, ic.Issuer, "issuer", "the same issuer is already configured at issuers[%d]", prev)
		}
		seen[ic.Issuer] = i
		if _, err := ic.settings(i); err != nil {
			return err
		}
	}
	return nil
}

// issuerSettings are an issuer's validated, defaulted settings.
type issuerSettings struct {
	algorithms  []jose.SignatureAlgorithm
	leeway      time.Duration
	userIDClaim string
	scopeClaim  string
}

// settings validates the fields that need no file and applies the defaults.
func (ic IssuerConfig) settings(i int) (issuerSettings, error) {
	fail := func(field, format string, args ...any) (issuerSettings, error) {
		return issuerSettings{}, issuerErr(i, ic.Issuer, field, format, args...)
	}
	if ic.Issuer == "" {
		return fail("issuer", "is required")
	}
	if strings.TrimSpace(ic.Issuer) != ic.Issuer {
		return fail("issuer", "has leading or trailing white space")
	}
	if len(ic.Audiences) == 0 {
		return fail("audiences", "at least one audience is required")
	}
	for j, a := range ic.Audiences {
		if a == "" {
			return fail(fmt.Sprintf("audiences[%d]", j), "must not be empty")
		}
	}
	if ic.JWKSFile == "" && len(ic.PublicKeys) == 0 {
		return fail("jwks_file/public_keys", "no keys: set jwks_file or public_keys")
	}
	for j, p := range ic.PublicKeys {
		if p == "" {
			return fail(fmt.Sprintf("public_keys[%d]", j), "must not be empty")
		}
	}

	var s issuerSettings
	names := ic.Algorithms
	if names == nil {
		names = DefaultAlgorithms()
	}
	if len(names) == 0 {
		return fail("algorithms", "must not be empty (leave it out for the default %v)", DefaultAlgorithms())
	}
	for j, name := range names {
		alg := jose.SignatureAlgorithm(name)
		field := fmt.Sprintf("algorithms[%d]", j)
		switch {
		case slices.Contains(asymmetricAlgorithms, alg):
			if !slices.Contains(s.algorithms, alg) {
				s.algorithms = append(s.algorithms, alg)
			}
		case strings.EqualFold(name, "none"):
			return fail(field, `"none" is never accepted: tokens must be signed`)
		case strings.HasPrefix(strings.ToUpper(name), "HS"):
			return fail(field, "%q is a symmetric (HMAC) algorithm; only asymmetric algorithms are accepted (%s)", name, algList())
		default:
			return fail(field, "unknown algorithm %q; accepted: %s", name, algList())
		}
	}

	s.leeway = DefaultLeeway
	if ic.Leeway != "" {
		d, err := time.ParseDuration(ic.Leeway)
		if err != nil {
			return fail("leeway", "%q is not a Go duration (for example \"30s\")", ic.Leeway)
		}
		if d < 0 || d > MaxLeeway {
			return fail("leeway", "%s is out of range 0s – %s", d, MaxLeeway)
		}
		s.leeway = d
	}

	s.userIDClaim = orDefault(ic.UserIDClaim, DefaultUserIDClaim)
	s.scopeClaim = orDefault(ic.ScopeClaim, DefaultScopeClaim)
	for attr, claim := range ic.AttributeClaims {
		if attr == "" {
			return fail("attribute_claims", "an attribute name is empty")
		}
		if claim == "" {
			return fail("attribute_claims", "attribute %q names no claim", attr)
		}
	}
	return s, nil
}

// orDefault returns v, or def when v is empty.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func algList() string {
	names := make([]string, len(asymmetricAlgorithms))
	for i, a := range asymmetricAlgorithms {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// issuerErr is a config error naming the issuer and the field at fault.
func issuerErr(i int, issuer, field, format string, args ...any) error {
	return fmt.Errorf("%w: issuers[%d] (issuer %q): %s: %s", ErrInvalidConfig, i, issuer, field, fmt.Sprintf(format, args...))
}

// ParseConfig decodes a trusted-issuers file strictly: unknown fields, wrong
// types and trailing data are errors naming the issuer and field. It does not
// validate the values (New does).
func ParseConfig(data []byte) (Config, error) {
	var top struct {
		Issuers []json.RawMessage `json:"issuers"`
	}
	if err := decodeStrict(data, &top); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	cfg := Config{Issuers: make([]IssuerConfig, len(top.Issuers))}
	for i, raw := range top.Issuers {
		if err := decodeStrict(raw, &cfg.Issuers[i]); err != nil {
			// Name the issuer if its "issuer" field can be read at all.
			var named struct {
				Issuer string `json:"issuer"`
			}
			_ = json.Unmarshal(raw, &named)
			return Config{}, fmt.Errorf("%w: issuers[%d] (issuer %q): %v", ErrInvalidConfig, i, named.Issuer, err)
		}
	}
	return cfg, nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// readFile reads a file of at most maxFileSize bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}
