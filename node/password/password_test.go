package password

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"
)

// fastParams keep tests quick; DefaultParams are exercised by the round trip
// and the benchmark.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// idKeyCall is one argon2id computation as a Hasher asked for it.
type idKeyCall struct {
	time, memory    uint32
	threads         uint8
	saltLen, keyLen int
}

// recorder replaces h's argon2 function with one that records each call and
// then runs the real computation.
type recorder struct {
	mu    sync.Mutex
	calls []idKeyCall
}

func record(h *Hasher) *recorder {
	r := &recorder{}
	h.idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		r.mu.Lock()
		r.calls = append(r.calls, idKeyCall{time, memory, threads, len(salt), int(keyLen)})
		r.mu.Unlock()
		return argon2.IDKey(password, salt, time, memory, threads, keyLen)
	}
	return r
}

func (r *recorder) get() []idKeyCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]idKeyCall(nil), r.calls...)
}

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHash_RoundTripWithDefaultParams(t *testing.T) {
	h := NewHasher(DefaultParams, 0)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !phc.MatchString(encoded) {
		t.Fatalf("hash %q is not a PHC argon2id string with the default parameters", encoded)
	}
	ok, err := h.Verify(ctx, encoded, "correct horse battery staple")
	if err != nil || !ok {
		t.Fatalf("Verify(right password) = %v, %v; want true, nil", ok, err)
	}
	ok, err = h.Verify(ctx, encoded, "correct horse battery stapler")
	if err != nil || ok {
		t.Fatalf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
	}
}

func TestVerify_WrongPasswordIsFalse(t *testing.T) {
	h := NewHasher(fastParams, 1)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "password-one")
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{"", "password-on", "password-one ", "Password-one", "password-two"} {
		if ok, err := h.Verify(ctx, encoded, wrong); err != nil || ok {
			t.Errorf("Verify(%q) = %v, %v; want false, nil", wrong, ok, err)
		}
	}
}

func TestHash_SamePasswordGivesDifferentHashes(t *testing.T) {
	h := NewHasher(fastParams, 1)
	ctx := context.Background()
	seen := map[string]bool{}
	for range 5 {
		encoded, err := h.Hash(ctx, "same password")
		if err != nil {
			t.Fatal(err)
		}
		if seen[encoded] {
			t.Fatalf("hash %q repeated: the salt is not random", encoded)
		}
		seen[encoded] = true
		if ok, err := h.Verify(ctx, encoded, "same password"); err != nil || !ok {
			t.Fatalf("Verify = %v, %v; want true, nil", ok, err)
		}
	}
}

func TestVerify_ReadsParamsFromTheHash(t *testing.T) {
	old := NewHasher(Params{Memory: 128, Time: 3, Threads: 2, SaltLen: 8, KeyLen: 16}, 1)
	ctx := context.Background()
	encoded, err := old.Hash(ctx, "rotated params")
	if err != nil {
		t.Fatal(err)
	}
	h := NewHasher(fastParams, 1)
	r := record(h)
	if ok, err := h.Verify(ctx, encoded, "rotated params"); err != nil || !ok {
		t.Fatalf("Verify of a hash made with other parameters = %v, %v; want true, nil", ok, err)
	}
	want := idKeyCall{time: 3, memory: 128, threads: 2, saltLen: 8, keyLen: 16}
	if calls := r.get(); len(calls) != 1 || calls[0] != want {
		t.Fatalf("argon2 calls = %+v; want [%+v]", calls, want)
	}
}

func TestVerify_RefusesMalformedAndOutOfBoundsHashes(t *testing.T) {
	salt := strings.Repeat("A", 22)      // 16 bytes
	key := strings.Repeat("B", 42) + "A" // 32 bytes (the last character's two spare bits zero)
	ok := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	b := func(n int) string { return b64.EncodeToString(make([]byte, n)) }
	cases := map[string]string{
		"empty":                    "",
		"not PHC":                  "plaintext",
		"argon2i":                  "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"argon2d":                  "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"bcrypt":                   "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"version 16":               "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"no version":               "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"missing key":              "$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"extra field":              ok("m=64,t=1,p=1") + "$" + key,
		"trailing dollar":          ok("m=64,t=1,p=1") + "$",
		"params reordered":         ok("t=1,m=64,p=1"),
		"param missing":            ok("m=64,t=1"),
		"extra param":              ok("m=64,t=1,p=1,keyid=abc"),
		"empty param":              ok("m=,t=1,p=1"),
		"leading zero":             ok("m=064,t=1,p=1"),
		"plus sign":                ok("m=+64,t=1,p=1"),
		"negative":                 ok("m=64,t=-1,p=1"),
		"not a number":             ok("m=lots,t=1,p=1"),
		"spaces":                   ok("m=64, t=1, p=1"),
		"memory overflows uint32":  ok("m=4294967296,t=1,p=1"),
		"memory over 1 GiB":        ok("m=1048577,t=1,p=1"),
		"memory below 8 KiB/lane":  ok("m=15,t=1,p=2"),
		"time zero":                ok("m=64,t=0,p=1"),
		"time over 16":             ok("m=64,t=17,p=1"),
		"time huge":                ok("m=64,t=4294967295,p=1"),
		"threads zero":             ok("m=64,t=1,p=0"),
		"threads over 64":          ok("m=1024,t=1,p=65"),
		"threads overflow uint8":   ok("m=4096,t=1,p=256"),
		"salt 7 bytes":             "$argon2id$v=19$m=64,t=1,p=1$" + b(7) + "$" + key,
		"salt 129 bytes":           "$argon2id$v=19$m=64,t=1,p=1$" + b(129) + "$" + key,
		"salt empty":               "$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"key 7 bytes":              "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + b(7),
		"key 129 bytes":            "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + b(129),
		"salt padded":              "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key,
		"salt url alphabet":        "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("_", 22) + "$" + key,
		"key non-canonical bits":   "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("B", 43),
		"key with newline":         ok("m=64,t=1,p=1") + "\n",
		"salt with CR LF":          "$argon2id$v=19$m=64,t=1,p=1$" + salt[:11] + "\r\n" + salt[11:] + "$" + key,
		"longer than any valid":    "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("B", 600),
		"valid prefix, NUL inside": "$argon2id$v=19$m=64\x00,t=1,p=1$" + salt + "$" + key,
	}
	h := NewHasher(fastParams, 1)
	r := record(h)
	for name, encoded := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := h.Verify(context.Background(), encoded, "any password")
			if ok || !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("Verify = %v, %v; want false and an error wrapping ErrInvalidHash", ok, err)
			}
			if msg := err.Error(); strings.Contains(msg, salt) || strings.Contains(msg, "BBBB") || strings.Contains(msg, "any password") {
				t.Fatalf("error %q quotes the hash or the password", msg)
			}
		})
	}
	if calls := r.get(); len(calls) != 0 {
		t.Fatalf("argon2 ran %d times for refused hashes; want 0", len(calls))
	}
	// The base case is valid, so each refusal above is due to its one change.
	if _, _, _, err := decode(ok("m=64,t=1,p=1")); err != nil {
		t.Fatalf("the well-formed base hash is refused: %v", err)
	}
}

func TestVerifyNothing_DoesTheWorkOfAFailedVerify(t *testing.T) {
	p := Params{Memory: 96, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	h := NewHasher(p, 1)
	r := record(h)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "the real one")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(ctx, encoded, "a guess"); err != nil || ok {
		t.Fatalf("Verify = %v, %v; want false, nil", ok, err)
	}
	h.VerifyNothing(ctx, "a guess")
	calls := r.get()
	if len(calls) != 3 {
		t.Fatalf("argon2 ran %d times for Hash, Verify and VerifyNothing; want 3", len(calls))
	}
	if calls[2] != calls[1] {
		t.Fatalf("VerifyNothing computed %+v; Verify computed %+v; want the same work", calls[2], calls[1])
	}
	// The dummy hash is fixed per Hasher and matches no password tried.
	if ok, err := h.Verify(ctx, h.dummy, ""); err != nil || ok {
		t.Fatalf("Verify(dummy) = %v, %v; want false, nil", ok, err)
	}
}

func TestVerifyNothing_WaitsForASlot(t *testing.T) {
	h := NewHasher(fastParams, 1)
	r := record(h)
	h.sem <- struct{}{} // occupy the only slot

	done := make(chan struct{})
	go func() {
		h.VerifyNothing(context.Background(), "guess")
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("VerifyNothing returned while every slot was taken")
	default:
	}
	<-h.sem // free the slot
	<-done
	if n := len(r.get()); n != 1 {
		t.Fatalf("argon2 ran %d times; want 1", n)
	}

	// And a caller that gives up while waiting does no work.
	h.sem <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		h.VerifyNothing(ctx, "guess")
		close(done)
	}()
	cancel()
	<-done
	<-h.sem
	if n := len(r.get()); n != 1 {
		t.Fatalf("argon2 ran %d times after a cancelled wait; want still 1", n)
	}
}

func TestHasher_WaitsOnContextWhenFull(t *testing.T) {
	h := NewHasher(fastParams, 1)
	r := record(h)
	encoded, err := h.Hash(context.Background(), "password")
	if err != nil {
		t.Fatal(err)
	}
	h.sem <- struct{}{} // occupy the only slot
	defer func() { <-h.sem }()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(cancelled, "password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a cancelled context = %v; want context.Canceled", err)
	}

	// A caller already waiting is released by its context.
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		ok  bool
		err error
	}
	res := make(chan result, 1)
	go func() {
		ok, err := h.Verify(ctx, encoded, "password")
		res <- result{ok, err}
	}()
	cancel()
	if got := <-res; got.ok || !errors.Is(got.err, context.Canceled) {
		t.Fatalf("Verify while full, then cancelled = %v, %v; want false, context.Canceled", got.ok, got.err)
	}
	if n := len(r.get()); n != 1 {
		t.Fatalf("argon2 ran %d times; want 1 (only the first Hash)", n)
	}
}

func TestHasher_BoundsConcurrency(t *testing.T) {
	const limit, callers = 2, 6
	h := NewHasher(fastParams, limit)
	var running, peak atomic.Int32
	entered := make(chan struct{}, callers)
	release := make(chan struct{})
	h.idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		running.Add(-1)
		return argon2.IDKey(password, salt, time, memory, threads, keyLen)
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if _, err := h.Hash(context.Background(), "password"); err != nil {
				t.Error(err)
			}
		})
	}
	for range limit {
		<-entered // the first `limit` callers are inside at once
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p != limit {
		t.Fatalf("peak concurrent hashes = %d; want %d", p, limit)
	}
}

func TestNewHasher_DefaultConcurrencyIsTwiceGOMAXPROCS(t *testing.T) {
	for _, n := range []int{0, -1} {
		if got, want := cap(NewHasher(fastParams, n).sem), 2*runtime.GOMAXPROCS(0); got != want {
			t.Errorf("NewHasher(_, %d) allows %d at once; want %d", n, got, want)
		}
	}
	if got := cap(NewHasher(fastParams, 3).sem); got != 3 {
		t.Errorf("NewHasher(_, 3) allows %d at once; want 3", got)
	}
}

func TestHash_RefusesParamsOutOfBounds(t *testing.T) {
	for _, p := range []Params{
		{},
		{Memory: MaxMemory + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: MaxTime + 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: MaxThreads + 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: MinSaltLen - 1, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: MaxKeyLen + 1},
	} {
		h := NewHasher(p, 1)
		if _, err := h.Hash(context.Background(), "password"); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Hash with %+v = %v; want ErrInvalidParams", p, err)
		}
		h.VerifyNothing(context.Background(), "password") // must not panic
	}
	if err := DefaultParams.Validate(); err != nil {
		t.Fatalf("DefaultParams are invalid: %v", err)
	}
}

func TestParams_String(t *testing.T) {
	if got, want := DefaultParams.String(), "argon2id m=19456 KiB, t=2, p=1"; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
}

func TestCheckPolicy(t *testing.T) {
	cases := []struct {
		name, password string
		ok             bool
		rule           string
	}{
		{"8 bytes", "abcdefgh", true, ""},
		{"1024 bytes", strings.Repeat("x", 1024), true, ""},
		{"unicode", "pässwörd-ünïcode", true, ""},
		{"7 bytes", "abcdefg", false, "at least 8 bytes"},
		{"empty", "", false, "at least 8 bytes"},
		{"4 runes, 8 bytes", "ääää", true, ""},
		{"1025 bytes", strings.Repeat("y", 1025), false, "at most 1024 bytes"},
		{"invalid UTF-8", "secret-\xff\xfe-value", false, "valid UTF-8"},
		{"NUL", "secret\x00value", false, "NUL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckPolicy(c.password)
			if c.ok {
				if err != nil {
					t.Fatalf("CheckPolicy = %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("CheckPolicy = %v; want an error wrapping ErrPolicy", err)
			}
			if !strings.Contains(err.Error(), c.rule) {
				t.Fatalf("error %q does not name the rule %q", err, c.rule)
			}
			if c.password != "" && strings.Contains(err.Error(), c.password) {
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
}

// FuzzDecode checks that no input crashes the parser and that whatever it
// accepts is within bounds and in canonical form (it re-encodes to itself).
func FuzzDecode(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZGVyaXZlZGtleWRlcml2ZWRrZXlkZXJpdmVka2V5eHg")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=1048577,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := decode(encoded)
		if err != nil {
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("decode error %v does not wrap ErrInvalidHash", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decode accepted out-of-bounds parameters: %v", err)
		}
		if again := encode(p, salt, key); again != encoded {
			t.Fatalf("decode accepted a non-canonical hash: %q re-encodes as %q", encoded, again)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	h := NewHasher(DefaultParams, 1)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := h.Verify(ctx, encoded, "benchmark password"); err != nil || !ok {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
