package node

import (
	"crypto/rand"
	"encoding/base64"

	"github.com/sessiond/sessiond/events"
)

// Token prefixes make leaked tokens recognisable to secret scanners.
const (
	AccessTokenPrefix  = "sa_"
	RefreshTokenPrefix = "sr_"

	tokenBytes  = 32 // 256 bits of randomness
	tokenLength = 3 + 43
)

// mintToken returns a new random token with the given prefix and its hash.
// tag is the minting group's region tag (regions.go), after the random
// part: "" in a single-region cluster.
func mintToken(prefix, tag string) (string, events.TokenHash) {
	var raw [tokenBytes]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it aborts the process instead)
	token := prefix + base64.RawURLEncoding.EncodeToString(raw[:]) + tag
	return token, events.HashToken(token)
}

// wellFormed reports whether token looks like one sessiond minted with the
// given prefix, region tag aside (groupOfToken reads it). It lets garbage
// be refused before any lookup.
func wellFormed(token, prefix string) bool {
	if len(token) < tokenLength || token[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < tokenLength; i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionIDLength is the length of an untagged session id.
const sessionIDLength = 22

// newSessionID is 128 random bits, URL-safe (22 characters), then the
// minting group's region tag.
func newSessionID(tag string) events.SessionID { return events.SessionID(randomID(16) + tag) }

// newRequestID names one write for at-most-once application.
func newRequestID() string { return randomID(12) }
