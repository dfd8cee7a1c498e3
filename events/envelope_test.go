package events

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleEnvelopes() []Envelope {
	h := func(s string) TokenHash { return HashToken(s) }
	return []Envelope{
		{Time: 1700000000000000000, RequestID: "r1", Event: &SessionCreated{
			SessionID: "s1", UserID: "alice", App: "default", AuthMethod: AuthImpersonation,
			RememberMe: true, Scopes: []string{"read", "write"},
			Attributes:  []Attribute{{Key: "role", Value: "admin"}},
			Device:      Device{UserAgent: "curl/8", IP: "127.0.0.1", Label: "laptop"},
			AccessHash:  h("sa_a"),
			RefreshHash: h("sr_r"),
		}},
		{Time: 2, RequestID: "r2", Event: &SessionRefreshed{SessionID: "s1", PresentedHash: h("sr_r"), NewAccessHash: h("a2"), NewRefreshHash: h("r2")}},
		{Time: 3, RequestID: "r3", Event: &SessionRevoked{SessionID: "s1", Scope: RevokeAccessToken, Reason: ReasonLogout, TokenHash: h("a2")}},
		{Time: 4, RequestID: "r4", Event: &UserForceLoggedOut{UserID: "alice", Reason: ReasonAdmin, Except: "s2"}},
		{Time: 5, RequestID: "r5", Event: &SessionsBulkRevoked{CreatedBefore: 5, Apps: []string{"a", "b"}, Reason: ReasonBulk}},
		{Time: 6, RequestID: "r6", Event: &SessionsExpired{Until: 6}},
		{Time: 7, RequestID: "r7", Event: &SessionCreated{
			SessionID: "s3", UserID: "bob", App: "web", AuthMethod: AuthPassword,
			AccessHash: h("sa_b"), RefreshHash: h("sr_b"),
			LoginID: "email:bob@example.com", CredentialVersion: 8, EndSessions: []SessionID{"s1", "s2"},
		}},
		{Time: 8, RequestID: "r8", Event: &SessionRefreshed{SessionID: "s3", PresentedHash: h("sr_b"), NewAccessHash: h("a3"), NewRefreshHash: h("r3"), LastUsedAt: 7}},
		{Time: 9, RequestID: "r9", Event: &SessionsTouched{Touches: []Touch{{SessionID: "s1", At: 8}, {SessionID: "s3", At: 9}}}},
		{Time: 10, RequestID: "r10", Event: &UserCredentialsSet{UserID: "bob", Email: "bob@example.com", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", Reason: ReasonPasswordReset, MustExist: true}},
		{Time: 11, RequestID: "r11", Event: &UserDeleted{UserID: "bob"}},
		{Time: 12, RequestID: "r12", Event: &LoginFailed{LoginID: "user:bob", UserID: "bob"}},
		{Time: 13, RequestID: "r13", Event: &UserUnlocked{UserID: "bob"}},
		{Time: 14, RequestID: "r14", Event: &UserLimitSet{UserID: "bob", MaxSessions: 5}},
		{Time: 15, RequestID: "r15", Event: &UserLimitSet{UserID: "bob", Clear: true}},
		{Time: 16, RequestID: "r16", Event: &PolicySet{Policy: func() Policy {
			p := DefaultPolicy()
			p.IdleTimeout = 30 * time.Minute
			p.AppMaxSessions = []AppLimit{{App: "mobile", MaxSessions: 2}}
			return p
		}()}},
	}
}

func TestEnvelope_RoundTrip(t *testing.T) {
	for _, env := range allSampleEnvelopes() {
		data, err := Encode(env)
		if err != nil {
			t.Fatalf("encode %s: %v", env.Type(), err)
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("decode %s: %v", env.Type(), err)
		}
		env.Version = CurrentVersion
		if !reflect.DeepEqual(got, env) {
			t.Errorf("%s: round trip changed the envelope:\n got %+v\nwant %+v", env.Type(), got, env)
		}
		again, _ := Encode(got)
		if !bytes.Equal(again, data) {
			t.Errorf("%s: encoding is not stable", env.Type())
		}
	}
}

func TestDecode_RejectsUnknownTypeAndVersion(t *testing.T) {
	data, err := Encode(sampleEnvelopes()[0])
	if err != nil {
		t.Fatal(err)
	}
	unknownType := append([]byte{200}, data[1:]...)
	if _, err := Decode(unknownType); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: got %v, want ErrUnknownType", err)
	}
	futureVersion := append([]byte{data[0], CurrentVersion + 1}, data[2:]...)
	if _, err := Decode(futureVersion); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("future version: got %v, want ErrUnsupportedVersion", err)
	}
	if _, err := Encode(Envelope{Version: 9, Event: &SessionsExpired{}}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("encoding an unsupported version: got %v", err)
	}
}

func TestDecode_RejectsMalformed(t *testing.T) {
	data, _ := Encode(sampleEnvelopes()[0])
	cases := map[string][]byte{
		"empty":     nil,
		"one byte":  {1},
		"truncated": data[:len(data)-3],
		"trailing":  append(append([]byte{}, data...), 0xc0),
		"not array": {byte(TypeSessionsExpired), CurrentVersion, 0x01},
	}
	for name, in := range cases {
		if _, err := Decode(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestDecode_RejectsUnknownField(t *testing.T) {
	// A SessionsExpired body with an extra field "x".
	body := []byte{byte(TypeSessionsExpired), CurrentVersion,
		0x93, 0x01, 0xa1, 'r', // [1, "r",
		0x82, 0xa5, 'u', 'n', 't', 'i', 'l', 0x01, 0xa1, 'x', 0x02} // {"until":1,"x":2}]
	if _, err := Decode(body); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed for an unknown field", err)
	}
}

func TestHashToken_MatchesSHA256OfLongTokens(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 300))
	if HashToken(long) == HashToken(long[:128]) {
		t.Fatal("long tokens must hash in full")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = HashToken("sa_0123456789012345678901234567890123456789abc") }); allocs != 0 {
		t.Errorf("HashToken allocates %v times per call", allocs)
	}
}

func FuzzDecode(f *testing.F) {
	for _, env := range allSampleEnvelopes() {
		data, _ := Encode(env)
		f.Add(data)
	}
	f.Add([]byte{1, 1, 0x93})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(env)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		env2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !reflect.DeepEqual(env, env2) {
			t.Fatalf("decode(encode(decode(x))) differs:\n%+v\n%+v", env, env2)
		}
	})
}

// TokenHash has its own msgpack decoder (to save an allocation per hash); it
// must take and refuse exactly what the generic decoder of a 32-byte array
// takes and refuses, or nodes of two versions would read a log differently.
// Decoded into fresh values, as the log's entries are (see DecodeMsgpack for
// the one difference, which entries cannot reach).
func TestTokenHash_DecodesLikeAByteArray(t *testing.T) {
	type generic struct {
		H [32]byte `msgpack:"h"`
	}
	type custom struct {
		H TokenHash `msgpack:"h"`
	}
	full := HashToken("sa_x")
	cases := map[string]any{
		"32 bytes":      map[string]any{"h": full[:]},
		"nil":           map[string]any{"h": nil},
		"short":         map[string]any{"h": []byte{1, 2, 3}},
		"empty":         map[string]any{"h": []byte{}},
		"33 bytes":      map[string]any{"h": append(full[:], 9)},
		"a string":      map[string]any{"h": "abc"},
		"not bytes":     map[string]any{"h": 7},
		"an array":      map[string]any{"h": []int{1, 2}},
		"the full hash": generic{H: full},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := msgpack.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var g generic
			var c custom
			gerr := msgpack.Unmarshal(data, &g)
			cerr := msgpack.Unmarshal(data, &c)
			if (gerr == nil) != (cerr == nil) {
				t.Fatalf("generic decoder: %v, TokenHash: %v", gerr, cerr)
			}
			if gerr == nil && g.H != [32]byte(c.H) {
				t.Fatalf("generic decoder read %x, TokenHash %x", g.H, c.H)
			}
		})
	}
}

// TokenHash's own encoder must write what the generic encoder writes for a
// 32-byte array. It has a pointer receiver (a value one would box the
// array): msgpack then refuses a hash it cannot address, such as a map
// value, loudly. Events hold hashes only as fields and are encoded through
// pointers.
func TestTokenHash_EncodesLikeAByteArray(t *testing.T) {
	type generic struct {
		H [32]byte   `msgpack:"h"`
		S [][32]byte `msgpack:"s"`
	}
	type custom struct {
		H TokenHash   `msgpack:"h"`
		S []TokenHash `msgpack:"s"`
	}
	for _, h := range []TokenHash{HashToken("sa_x"), {}} {
		want, err := msgpack.Marshal(&generic{H: h, S: [][32]byte{h, h}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := msgpack.Marshal(&custom{H: h, S: []TokenHash{h, h}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("hash %x encodes as % x, a byte array as % x", h[:4], got, want)
		}
	}
	if _, err := msgpack.Marshal(map[string]TokenHash{"k": {}}); err == nil {
		t.Error("a hash msgpack cannot address encoded: the comment above is out of date")
	}
}
