package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters and the salt and key lengths.
type Params struct {
	Memory  uint32 // memory per hash, in KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes (degree of parallelism)
	SaltLen uint32 // bytes of random salt
	KeyLen  uint32 // bytes of derived key
}

// DefaultParams is OWASP's minimum recommendation for argon2id:
// m=19 MiB, t=2, p=1, with a 128-bit salt and a 256-bit key.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds accepted for parameters, whether given to NewHasher or read from a
// stored hash. They are generous for real use and stop a corrupt hash from
// costing a node gigabytes or minutes.
const (
	MaxMemory  = 1 << 20 // KiB (1 GiB)
	MaxTime    = 16
	MaxThreads = 64
	MinSaltLen = 8
	MaxSaltLen = 128
	MinKeyLen  = 8
	MaxKeyLen  = 128

	// maxEncodedLen bounds a PHC string before any parsing: the longest
	// valid one (128-byte salt and key, largest parameters) is well under it.
	maxEncodedLen = 512
)

// Password policy (CheckPolicy).
const (
	MinPasswordLen = 8    // bytes
	MaxPasswordLen = 1024 // bytes
)

var (
	// ErrInvalidHash is returned (wrapped, naming the fault) for a stored
	// hash that is malformed, of another algorithm or version, or whose
	// parameters are out of bounds.
	ErrInvalidHash = errors.New("invalid password hash")

	// ErrInvalidParams is returned (wrapped) by Params.Validate and Hash for
	// parameters out of bounds.
	ErrInvalidParams = errors.New("invalid argon2id parameters")

	// ErrPolicy is returned (wrapped, naming the rule) by CheckPolicy.
	ErrPolicy = errors.New("password does not meet the policy")
)

// String describes p for logs and docs, for example
// "argon2id m=19456 KiB, t=2, p=1".
func (p Params) String() string {
	return fmt.Sprintf("argon2id m=%d KiB, t=%d, p=%d", p.Memory, p.Time, p.Threads)
}

// Validate reports whether p is within the bounds Verify accepts.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: time must be 1 to %d, got %d", ErrInvalidParams, MaxTime, p.Time)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: threads must be 1 to %d, got %d", ErrInvalidParams, MaxThreads, p.Threads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemory:
		// RFC 9106 requires at least 8 KiB per lane.
		return fmt.Errorf("%w: memory must be %d to %d KiB, got %d", ErrInvalidParams, 8*uint32(p.Threads), MaxMemory, p.Memory)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("%w: salt length must be %d to %d bytes, got %d", ErrInvalidParams, MinSaltLen, MaxSaltLen, p.SaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("%w: key length must be %d to %d bytes, got %d", ErrInvalidParams, MinKeyLen, MaxKeyLen, p.KeyLen)
	}
	return nil
}

// Hasher hashes and verifies passwords, running at most a fixed number of
// argon2id computations at once (each takes its Memory KiB while it runs).
// Make one with NewHasher; it is safe for concurrent use.
type Hasher struct {
	params Params
	sem    chan struct{}
	// dummy is a well-formed hash under params that no password matches
	// (its key is random, not derived); VerifyNothing verifies against it.
	dummy string
	// idKey is argon2.IDKey; tests replace it to observe the work done.
	idKey func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

// NewHasher returns a Hasher that hashes with p and runs at most
// maxConcurrent hashes at once; maxConcurrent <= 0 means 2*GOMAXPROCS.
// Parameters out of bounds (see Params.Validate) make Hash fail.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	if maxConcurrent <= 0 {
		maxConcurrent = 2 * runtime.GOMAXPROCS(0)
	}
	h := &Hasher{
		params: p,
		sem:    make(chan struct{}, maxConcurrent),
		idKey:  argon2.IDKey,
	}
	if p.Validate() == nil {
		h.dummy = encode(p, randomBytes(p.SaltLen), randomBytes(p.KeyLen))
	}
	return h
}

// Params returns the parameters h hashes with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of password under h's parameters with a new
// random salt. It waits for a free slot until ctx is done (returning
// ctx.Err()). It does not apply CheckPolicy: callers do, where it applies.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.params.Validate(); err != nil {
		return "", err
	}
	salt := randomBytes(h.params.SaltLen)
	key, err := h.derive(ctx, h.params, []byte(password), salt)
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, a PHC string from Hash
// (under any parameters within bounds). The keys are compared in constant
// time. A malformed or out-of-bounds hash is an error wrapping
// ErrInvalidHash, and no argon2 work is done for it. It waits for a free
// slot until ctx is done (returning ctx.Err()).
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got, err := h.derive(ctx, p, []byte(password), salt)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyNothing does the work of a Verify that fails — the same parsing, the
// same wait for a slot, the same argon2id computation under h's parameters —
// against a fixed hash no password matches. Call it when the user is unknown
// (or has no password) so that the answer takes as long as a wrong password.
func (h *Hasher) VerifyNothing(ctx context.Context, password string) {
	if h.dummy == "" {
		return // invalid parameters: Hash fails too, so no stored hash uses them
	}
	_, _ = h.Verify(ctx, h.dummy, password)
}

// derive runs argon2id in one of h's slots.
func (h *Hasher) derive(ctx context.Context, p Params, password, salt []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.sem }()
	return h.idKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// CheckPolicy reports whether password is acceptable to store: 8 to 1024
// bytes of valid UTF-8 without NUL. The error wraps ErrPolicy and names the
// rule broken; it never contains the password.
func CheckPolicy(password string) error {
	switch {
	case len(password) < MinPasswordLen:
		return fmt.Errorf("%w: it must be at least %d bytes long", ErrPolicy, MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("%w: it must be at most %d bytes long", ErrPolicy, MaxPasswordLen)
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: it must be valid UTF-8", ErrPolicy)
	case strings.IndexByte(password, 0) >= 0:
		return fmt.Errorf("%w: it must not contain NUL characters", ErrPolicy)
	}
	return nil
}

const prefix = "$argon2id$v=19$"

var b64 = base64.RawStdEncoding.Strict()

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", prefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses a PHC string as encode writes it, and checks its parameters
// against the bounds. Errors wrap ErrInvalidHash and never quote the input.
func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	if len(encoded) > maxEncodedLen {
		return p, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxEncodedLen)
	}
	if !strings.HasPrefix(encoded, "$argon2id$") {
		return p, nil, nil, fmt.Errorf("%w: not an argon2id hash", ErrInvalidHash)
	}
	if !strings.HasPrefix(encoded, prefix) {
		return p, nil, nil, fmt.Errorf("%w: unsupported argon2 version (want v=%d)", ErrInvalidHash, argon2.Version)
	}
	fields := strings.Split(encoded[len(prefix):], "$")
	if len(fields) != 3 {
		return p, nil, nil, fmt.Errorf("%w: want parameters, salt and key", ErrInvalidHash)
	}
	params := strings.Split(fields[0], ",")
	if len(params) != 3 {
		return p, nil, nil, fmt.Errorf("%w: want parameters m, t and p", ErrInvalidHash)
	}
	m, err := parseParam(params[0], "m=", 32)
	if err != nil {
		return p, nil, nil, err
	}
	t, err := parseParam(params[1], "t=", 32)
	if err != nil {
		return p, nil, nil, err
	}
	l, err := parseParam(params[2], "p=", 8)
	if err != nil {
		return p, nil, nil, err
	}
	salt, err := decodeB64(fields[1])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: salt is not unpadded base64", ErrInvalidHash)
	}
	key, err := decodeB64(fields[2])
	if err != nil {
		return p, nil, nil, fmt.Errorf("%w: key is not unpadded base64", ErrInvalidHash)
	}
	p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(l), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.Validate(); err != nil {
		return p, nil, nil, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return p, salt, key, nil
}

// parseParam parses "name=decimal" strictly: no sign, no leading zero.
func parseParam(s, name string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok || digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, fmt.Errorf("%w: malformed parameter %q", ErrInvalidHash, strings.TrimSuffix(name, "="))
	}
	v, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed parameter %q", ErrInvalidHash, strings.TrimSuffix(name, "="))
	}
	return v, nil
}

// decodeB64 decodes unpadded standard base64 in canonical form only. The
// base64 package skips CR and LF anywhere, even in strict mode, so the
// alphabet is checked first.
func decodeB64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, base64.CorruptInputError(i)
		}
	}
	return b64.DecodeString(s)
}

func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead)
	return b
}
