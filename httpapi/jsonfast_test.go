package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func sampleSessionJSON(s string) sessionJSON {
	at := apiTime(1764000000123456789)
	return sessionJSON{
		SessionID: "s-" + s, UserID: "u@example.com", App: "web", AuthMethod: "password", Status: "active",
		CreatedAt: 1, LastSeenAt: 1764000000123456789, AccessExpiresAt: 1764000900000000000,
		RefreshExpiresAt: 1764001000000000000, ExpiresAt: 1766592000000000000, RememberMe: true,
		Scopes:     []string{"read", s},
		Attributes: map[string]string{"role": "admin", s: s, "z<&>": "\u2028\u2029"},
		Device:     deviceJSON{UserAgent: s, IP: "203.0.113.7", Label: "laptop " + s},
		RevokedAt:  &at, RevokeReason: "logout",
	}
}

// checkSameJSON fails unless the hand-written encoding decodes exactly as
// encoding/json's does (and is valid JSON).
func checkSameJSON(t *testing.T, v sessionJSON) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got := appendSessionJSON(nil, &v)
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	var a, b any
	if err := json.Unmarshal(want, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded differently:\n got  %s\n want %s", got, want)
	}
}

func TestAppendSessionJSON_MatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote \" backslash \\ slash /", "\x00\x01\x1f\x7f", "tab\tnl\ncr\r",
		"ünïcødé ✓ 😀", "bad \xff\xfe utf8", "<script>&</script>", "\u2028\u2029"} {
		checkSameJSON(t, sampleSessionJSON(s))
	}
	v := sampleSessionJSON("x")
	v.Scopes, v.Attributes, v.RevokedAt, v.RevokeReason = nil, nil, nil, ""
	checkSameJSON(t, v)
	v.Scopes, v.Attributes = []string{}, map[string]string{}
	checkSameJSON(t, v)
	// encoding/json's HTML-safe escaping is kept, byte for byte.
	want, _ := json.Marshal(sampleSessionJSON("<&>"))
	if got := appendSessionJSON(nil, ptr(sampleSessionJSON("<&>"))); !bytes.Equal(got, want) {
		t.Errorf("bytes differ:\n got  %s\n want %s", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzAppendSessionJSON(f *testing.F) {
	f.Add("x", "y")
	f.Add("\xff", "\u2028<")
	f.Fuzz(func(t *testing.T, a, b string) {
		v := sampleSessionJSON(a)
		v.Device.Label = b
		v.Attributes[b] = a
		checkSameJSON(t, v)
	})
}

func BenchmarkSessionJSON(b *testing.B) {
	v := sampleSessionJSON("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36")
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(v)
		}
	})
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = appendSessionJSON(buf[:0], &v)
		}
	})
}

// The API's times are written without time.Time.AppendFormat on the hot
// path; they must read exactly as AppendFormat writes them.
func TestAPITime_WritesAsTheTimeLayoutDoes(t *testing.T) {
	check := func(ns int64) {
		t.Helper()
		want := time.Unix(0, ns).UTC().Format(timeLayout)
		if got := string(apiTime(ns).appendText(nil)); got != want {
			t.Fatalf("%d: got %s, want %s", ns, got, want)
		}
	}
	edges := []time.Time{
		time.Unix(0, 0), time.Unix(0, -1), time.Unix(-1, 999_999_999),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 2, 28, 23, 59, 59, 999_000_000, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854_775_807, time.UTC), // the last
	}
	for _, e := range edges {
		check(e.UnixNano())
	}
	check(math.MaxInt64)
	check(math.MinInt64)
	// Every day from 1970 to 2262 at a varying time of day, then random
	// instants over the whole range int64 nanoseconds cover.
	for d := int64(0); d < 106_700; d++ {
		check(d*86_400_000_000_000 + d*7_919_000_123%86_400_000_000_000)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		check(int64(r.Uint64()))
	}
}
