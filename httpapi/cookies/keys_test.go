package cookies

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	keyA = []byte("key-a-0123456789abcdefghijklmnopqrstuv")
	keyB = []byte("key-b-0123456789abcdefghijklmnopqrstuv")
	keyC = []byte("key-c-0123456789abcdefghijklmnopqrstuv")
)

func mustKeys(tb testing.TB, keys ...[]byte) *Keys {
	tb.Helper()
	k, err := NewKeys(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestSignVerify_RoundTrip(t *testing.T) {
	k := mustKeys(t, keyA)
	for _, value := range []string{
		"sa_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"",
		"with.dots.inside",
		"ünïcode and spaces",
	} {
		signed := k.Sign(value)
		if !strings.HasPrefix(signed, value+".") || len(signed) != len(value)+1+macLen {
			t.Fatalf("Sign(%q) = %q; want value.<43-char MAC>", value, signed)
		}
		got, ok := k.Verify(signed)
		if !ok || got != value {
			t.Fatalf("Verify(Sign(%q)) = %q, %v; want the value, true", value, got, ok)
		}
	}
}

func TestSign_MACIsHMACOfDomainPrefixAndValue(t *testing.T) {
	signed := mustKeys(t, keyA).Sign("value")
	hm := func(msg string) string {
		m := hmac.New(sha256.New, keyA)
		m.Write([]byte(msg))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	if want := "value." + hm("sessiond-cookie-v1\x00value"); signed != want {
		t.Fatalf("Sign = %q; want %q", signed, want)
	}
	if strings.HasSuffix(signed, "."+hm("value")) {
		t.Fatal("the MAC is a plain HMAC of the value, with no domain prefix")
	}
}

func TestVerify_RefusesTampering(t *testing.T) {
	k := mustKeys(t, keyA)
	signed := k.Sign("sa_token-value")
	dot := strings.LastIndexByte(signed, '.')
	mac := signed[dot+1:]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := map[string]string{
		"value changed":           flip(signed, 3),
		"value extended":          "x" + signed,
		"value truncated":         signed[1:],
		"MAC first char changed":  flip(signed, dot+1),
		"MAC last char changed":   flip(signed, len(signed)-1),
		"MAC truncated":           signed[:len(signed)-1],
		"MAC extended":            signed + "A",
		"MAC missing":             signed[:dot],
		"MAC only":                "." + mac,
		"no dot":                  strings.Replace(signed, ".", "", 1),
		"empty":                   "",
		"dot only":                ".",
		"MAC padded":              signed + "=",
		"MAC in std alphabet":     signed[:dot+1] + strings.NewReplacer("-", "+", "_", "/").Replace(mac) + "+",
		"MAC with newline":        signed[:len(signed)-1] + "\n",
		"MAC of another value":    "sa_other." + mac,
		"signed by another key":   mustKeys(t, keyB).Sign("sa_token-value"),
		"too long to be a cookie": strings.Repeat("v", maxSignedLen) + "." + mac,
	}
	for name, s := range cases {
		if s == signed {
			t.Fatalf("%s: the tampered string equals the original", name)
		}
		if v, ok := k.Verify(s); ok {
			t.Errorf("%s: Verify(%q) = %q, true; want false", name, s, v)
		}
	}
}

func TestVerify_RotationKeepsOldKeysVerifying(t *testing.T) {
	before := mustKeys(t, keyA)
	old := before.Sign("signed-before-rotation")

	rotated := mustKeys(t, keyB, keyA) // new key first
	if v, ok := rotated.Verify(old); !ok || v != "signed-before-rotation" {
		t.Fatalf("after rotation, a value signed with the old key = %q, %v; want it to verify", v, ok)
	}
	fresh := rotated.Sign("signed-after-rotation")
	if fresh != mustKeys(t, keyB).Sign("signed-after-rotation") {
		t.Fatal("after rotation, Sign does not use the first (new) key")
	}
	if _, ok := before.Verify(fresh); ok {
		t.Fatal("a value signed with the new key verifies under the old ring alone")
	}

	retired := mustKeys(t, keyB, keyC) // old key removed
	if _, ok := retired.Verify(old); ok {
		t.Fatal("a value signed with a removed key still verifies")
	}
	if _, ok := retired.Verify(fresh); !ok {
		t.Fatal("a value signed with a kept key no longer verifies")
	}
}

func TestNewKeys_RefusesNoKeysAndShortKeys(t *testing.T) {
	if _, err := NewKeys(); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("NewKeys() = %v; want ErrNoKeys", err)
	}
	short := []byte("short-key-0123456789abcdefghijk") // 31 bytes
	_, err := NewKeys(keyA, short)
	if !errors.Is(err, ErrShortKey) {
		t.Fatalf("NewKeys(31-byte key) = %v; want ErrShortKey", err)
	}
	if strings.Contains(err.Error(), string(short)) || strings.Contains(err.Error(), string(keyA)) {
		t.Fatalf("error %q contains key material", err)
	}
	if _, err := NewKeys(short[:0:0], keyA); !errors.Is(err, ErrShortKey) {
		t.Fatalf("NewKeys(empty key) = %v; want ErrShortKey", err)
	}
	mine := bytes.Clone(keyA)
	k := mustKeys(t, mine)
	signed := k.Sign("value")
	mine[0] ^= 0xff
	if _, ok := k.Verify(signed); !ok {
		t.Fatal("NewKeys kept a reference to the caller's key: changing it changed the ring")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cookie.keys")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadKeys(t *testing.T) {
	a, b := string(keyA), string(keyB)
	cases := []struct {
		name    string
		content string
		keys    []string // nil: an error is expected
		err     error
	}{
		{"one key", a + "\n", []string{a}, nil},
		{"no final newline", a, []string{a}, nil},
		{"CRLF and spaces trimmed", "  " + a + " \r\n\t" + b + "\r\n", []string{a, b}, nil},
		{"comments and blank lines", "# cookie keys\n\n" + a + "\n  # old key below\n\n" + b + "\n\n", []string{a, b}, nil},
		{"first key signs", b + "\n" + a + "\n", []string{b, a}, nil},
		{"exactly 32 bytes", strings.Repeat("k", 32), []string{strings.Repeat("k", 32)}, nil},
		{"empty file", "", nil, ErrNoKeys},
		{"only comments and blanks", "# nothing here\n\n   \n#" + a + "\n", nil, ErrNoKeys},
		{"short key", a + "\nshort-secret-0123456789abcdefgh\n", nil, ErrShortKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := LoadKeys(writeFile(t, c.content))
			if c.keys == nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("LoadKeys = %v; want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, key := range k.keys {
				got = append(got, string(key))
			}
			if strings.Join(got, "|") != strings.Join(c.keys, "|") {
				t.Fatalf("keys = %q; want %q", got, c.keys)
			}
		})
	}
}

func TestLoadKeys_ErrorsContainNoKeyMaterial(t *testing.T) {
	secret := "short-secret-0123456789abcdefgh" // 31 bytes
	good := string(keyA)
	_, err := LoadKeys(writeFile(t, "# keys\n"+good+"\n\n"+secret+"\n"))
	if !errors.Is(err, ErrShortKey) {
		t.Fatalf("LoadKeys = %v; want ErrShortKey", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "line 4") {
		t.Errorf("error %q does not name the line", msg)
	}
	for _, leak := range []string{secret, secret[:8], good, good[:8]} {
		if strings.Contains(msg, leak) {
			t.Fatalf("error %q contains key material %q", msg, leak)
		}
	}

	if _, err := LoadKeys(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeys(missing file) = %v; want fs.ErrNotExist", err)
	}
}

func TestGenerateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cookie.keys")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("mode = %v; want 0600", mode)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSuffix(string(content), "\n")
	if len(key) != 43 || strings.ContainsAny(key, "+/=\n") {
		t.Fatalf("generated key is %d bytes %q; want 43 characters of unpadded base64url", len(key), key)
	}

	k, err := LoadKeys(path)
	if err != nil {
		t.Fatalf("the generated file does not load: %v", err)
	}
	if len(k.keys) != 1 || string(k.keys[0]) != key {
		t.Fatal("the generated file does not load as its one key")
	}

	if err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateKeyFile over an existing file = %v; want fs.ErrExist", err)
	}
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, content) {
		t.Fatalf("the existing key file changed (err %v)", err)
	}

	other := filepath.Join(t.TempDir(), "other.keys")
	if err := GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(other); bytes.Equal(second, content) {
		t.Fatal("two generated key files hold the same key")
	}
}

// FuzzVerify checks that no input crashes Verify and that only what Sign
// produced is accepted.
func FuzzVerify(f *testing.F) {
	k, err := NewKeys(keyA, keyB)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.Sign("sa_value"))
	f.Add(mustKeys(f, keyB).Sign("old"))
	f.Add("sa_value.")
	f.Add("")
	f.Fuzz(func(t *testing.T, signed string) {
		value, ok := k.Verify(signed)
		if !ok {
			return
		}
		if signed != k.Sign(value) && signed != mustKeys(t, keyB).Sign(value) {
			t.Fatalf("Verify accepted %q, which neither key signed as that", signed)
		}
	})
}

// maskKeys replaces every key line's key with as many x's, keeping white
// space, comments and blank lines: the same file with other keys.
func maskKeys(content string) string {
	lines := strings.Split(content, "\n")
	for i, line := range lines {
		key := strings.TrimSpace(line)
		if key == "" || strings.HasPrefix(key, "#") {
			continue
		}
		at := strings.Index(line, key)
		lines[i] = line[:at] + strings.Repeat("x", len(key)) + line[at+len(key):]
	}
	return strings.Join(lines, "\n")
}

// FuzzParseKeys checks the cookie key-file loader (LoadKeys once the file
// is read) on any content: no panic; it loads exactly the trimmed lines
// that are not blank or comments, each at least MinKeyLen bytes, refusing a
// short one (ErrShortKey) or a file without any (ErrNoKeys); its errors are
// the same whatever the keys' bytes (so hold none of them); and the keys it
// loaded, written one per line, load again as the same ring.
func FuzzParseKeys(f *testing.F) {
	f.Add("# cookie keys\n" + string(keyA) + "\r\n\n  " + string(keyB) + "\t\n")
	f.Add(string(keyA) + "\nshort-secret-0123456789abcdefgh\n")
	f.Add("# nothing\n\n")
	f.Add("")
	load := func(content string) (*Keys, error) { return parseKeys("cookie.keys", []byte(content)) }
	f.Fuzz(func(t *testing.T, content string) {
		var want []string
		var wantErr error
		for _, line := range strings.Split(content, "\n") {
			key := strings.TrimSpace(line)
			if key == "" || strings.HasPrefix(key, "#") {
				continue
			}
			if len(key) < MinKeyLen {
				wantErr = ErrShortKey
				break
			}
			want = append(want, key)
		}
		if wantErr == nil && len(want) == 0 {
			wantErr = ErrNoKeys
		}

		k, err := load(content)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("parseKeys = %v, want %v", err, wantErr)
			}
			if _, masked := load(maskKeys(content)); masked == nil || masked.Error() != err.Error() {
				t.Fatalf("the error depends on the keys' bytes: %q, with other keys %v", err, masked)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseKeys = %v, want %d keys", err, len(want))
		}
		var got []string
		for _, key := range k.keys {
			got = append(got, string(key))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("loaded %q, want %q", got, want)
		}
		again, err := load(strings.Join(got, "\n") + "\n")
		if err != nil || !reflect.DeepEqual(again, k) {
			t.Fatalf("the keys written again load as %v (%v)", again, err)
		}
	})
}
