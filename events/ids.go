package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// SessionID names one session. It is minted by the node that accepts the
// request (random, URL-safe) and carried in the event.
type SessionID string

// UserID names a user: 1–128 characters of [A-Za-z0-9._@:+-] (checked at the API).
type UserID string

// TokenHash is the SHA-256 of an access or refresh token. The cluster stores
// and replicates only this hash, never the token itself.
type TokenHash [sha256.Size]byte

// HashToken hashes a presented token. It does not allocate for tokens of up
// to 128 bytes, which covers every token sessiond mints; it sits on the
// validation hot path.
func HashToken(token string) TokenHash {
	var buf [128]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// Prefix64 returns the first eight bytes of the hash as an integer; the state
// machine uses it as a compact map key and confirms the full hash on lookup.
func (h TokenHash) Prefix64() uint64 { return binary.BigEndian.Uint64(h[:8]) }

// IsZero reports whether the hash is unset.
func (h TokenHash) IsZero() bool { return h == TokenHash{} }

// String shows a short, non-reversible fingerprint for debugging. It is a
// prefix of a hash, never a token.
func (h TokenHash) String() string { return hex.EncodeToString(h[:4]) }

// DecodeMsgpack reads the hash as msgpack's generic decoder reads a byte
// array — up to 32 bytes fill its start, more is an error — without the
// allocation its reflection costs for every hash of every applied event.
// One difference: msgpack zeroes a value
// with a custom decoder on nil, where the generic decoder leaves it as it
// was. Only a map that repeats a key could tell them apart, and log entries
// never do: the leader encodes every entry from a struct (Encode), also a
// forwarded one, which it decodes and encodes again.
func (h *TokenHash) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return err
	}
	if n == -1 {
		return nil
	}
	if n > len(h) {
		return fmt.Errorf("events.TokenHash len is %d, but msgpack has %d elements", len(h), n)
	}
	return dec.ReadFull(h[:n])
}

// EncodeMsgpack writes the hash as msgpack's generic encoder writes a
// 32-byte array (a bin of 32 bytes; the golden files pin it), without the
// two allocations its reflection costs per hash. With this pointer
// receiver msgpack refuses a hash it cannot address (a map value); events
// hold hashes as fields and are encoded through pointers.
func (h *TokenHash) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.EncodeBytes(h[:])
}
