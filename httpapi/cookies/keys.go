package cookies

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinKeyLen is the shortest key accepted, in bytes as written in the key
// file (a generated key is 43 characters of base64url: 256 random bits).
const MinKeyLen = 32

// macPrefix separates this MAC's domain from any other use of the same keys.
const macPrefix = "sessiond-cookie-v1\x00"

// macLen is the length of the encoded MAC: base64url of 32 bytes, unpadded.
const macLen = 43

// maxSignedLen bounds what Verify looks at: browsers keep cookies up to 4 KiB.
const maxSignedLen = 4096

var (
	// ErrNoKeys is returned when a key file or NewKeys holds no key.
	ErrNoKeys = errors.New("no cookie key")
	// ErrShortKey is returned (wrapped, naming the line) for a key shorter
	// than MinKeyLen.
	ErrShortKey = errors.New("cookie key too short")
)

// Keys is a ring of HMAC-SHA256 keys: the first signs, all verify.
// It is immutable and safe for concurrent use.
type Keys struct {
	keys [][]byte
}

// NewKeys returns a ring of the given keys, the first signing. Each must be
// at least MinKeyLen bytes. The keys are copied.
func NewKeys(keys ...[]byte) (*Keys, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	k := &Keys{keys: make([][]byte, len(keys))}
	for i, key := range keys {
		if len(key) < MinKeyLen {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want at least %d", ErrShortKey, i+1, len(key), MinKeyLen)
		}
		k.keys[i] = append([]byte(nil), key...)
	}
	return k, nil
}

// LoadKeys reads a key file: one key per line (its bytes, as written, are the
// key), blank lines and lines starting with # ignored, surrounding white
// space trimmed. The first key signs. Errors name the file and line, never a
// key.
func LoadKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cookie key file: %w", err)
	}
	return parseKeys(path, data)
}

// parseKeys reads the keys of a key file's content (see LoadKeys); path
// only names the file in errors.
func parseKeys(path string, data []byte) (*Keys, error) {
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < MinKeyLen {
			return nil, fmt.Errorf("cookie key file %s: line %d: %w: want at least %d bytes", path, i+1, ErrShortKey, MinKeyLen)
		}
		keys = append(keys, []byte(line))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("cookie key file %s: %w", path, ErrNoKeys)
	}
	return NewKeys(keys...)
}

// GenerateKeyFile writes a new key file at path holding one random key (32
// random bytes, base64url: 43 characters), with mode 0600. It refuses to
// overwrite an existing file (the error wraps fs.ErrExist).
func GenerateKeyFile(path string) (err error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it aborts the process instead)
	key := base64.RawURLEncoding.EncodeToString(raw[:])

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create cookie key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write cookie key file: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path) // leave no partial key file for the next start to load
		}
	}()
	if err := f.Chmod(0o600); err != nil { // whatever the umask
		return fmt.Errorf("write cookie key file: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		return fmt.Errorf("write cookie key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write cookie key file: %w", err)
	}
	return nil
}

// Sign returns value + "." + the base64url HMAC-SHA256 of value under the
// first key.
func (k *Keys) Sign(value string) string {
	return value + "." + base64.RawURLEncoding.EncodeToString(mac(k.keys[0], value))
}

// Verify returns the value of a string from Sign and whether its MAC is
// valid under any of the keys. Every key is tried, and the MACs are compared
// in constant time.
func (k *Keys) Verify(signed string) (string, bool) {
	if len(signed) > maxSignedLen {
		return "", false
	}
	dot := strings.LastIndexByte(signed, '.')
	if dot < 0 || len(signed)-dot-1 != macLen {
		return "", false
	}
	value := signed[:dot]
	got, err := base64.RawURLEncoding.Strict().DecodeString(signed[dot+1:])
	if err != nil || len(got) != sha256.Size {
		return "", false
	}
	ok := false
	for _, key := range k.keys {
		if hmac.Equal(mac(key, value), got) {
			ok = true
		}
	}
	if !ok {
		return "", false
	}
	return value, true
}

func mac(key []byte, value string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macPrefix))
	m.Write([]byte(value))
	return m.Sum(nil)
}
