package events

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport/msgpackcheck"
)

// Sentinel errors of decoding. A state machine that meets any of them must
// stop rather than skip the entry.
var (
	ErrUnknownType        = errors.New("events: unknown event type")
	ErrUnsupportedVersion = errors.New("events: unsupported event version")
	ErrMalformed          = errors.New("events: malformed event")
)

// CurrentVersion is the payload version this build writes for every type.
// A breaking change to a payload gets a new version (or a new type) and a
// decoder for the old one.
const CurrentVersion uint8 = 1

// headerLen is the type byte and the version byte in front of the body.
const headerLen = 2

// Envelope is one replicated event with its metadata.
type Envelope struct {
	// Version of the payload's encoding.
	Version uint8
	// Time is the leader-stamped event time in Unix nanoseconds. The state
	// machine never reads a clock: this is the only "now" it knows.
	Time int64
	// RequestID identifies the write that produced this event, so that a
	// write retried after an unknown outcome is applied at most once.
	RequestID string
	// Event is the payload.
	Event Event
}

// Type is the payload's type.
func (e Envelope) Type() Type { return e.Event.EventType() }

// newPayload returns an empty payload of the given type and version, or an
// error naming what is not supported.
func newPayload(t Type, version uint8) (Event, error) {
	var ev Event
	switch t {
	case TypeSessionCreated:
		ev = new(SessionCreated)
	case TypeSessionRefreshed:
		ev = new(SessionRefreshed)
	case TypeSessionRevoked:
		ev = new(SessionRevoked)
	case TypeUserForceLoggedOut:
		ev = new(UserForceLoggedOut)
	case TypeSessionsExpired:
		ev = new(SessionsExpired)
	case TypeSessionsBulkRevoked:
		ev = new(SessionsBulkRevoked)
	case TypeSessionsTouched:
		ev = new(SessionsTouched)
	case TypeUserCredentialsSet:
		ev = new(UserCredentialsSet)
	case TypeUserDeleted:
		ev = new(UserDeleted)
	case TypeLoginFailed:
		ev = new(LoginFailed)
	case TypeUserUnlocked:
		ev = new(UserUnlocked)
	case TypeUserLimitSet:
		ev = new(UserLimitSet)
	case TypePolicySet:
		ev = new(PolicySet)
	case TypeEmailClaimed:
		ev = new(EmailClaimed)
	case TypeUserHomed:
		ev = new(UserHomed)
	case TypeDirectoryImported:
		ev = new(DirectoryImported)
	case TypeUserFrozen:
		ev = new(UserFrozen)
	case TypeUserImported:
		ev = new(UserImported)
	case TypeHomeMoved:
		ev = new(HomeMoved)
	case TypeBatch:
		return nil, fmt.Errorf("%w: a batch entry holds events and is not one (see DecodeBatch)", ErrUnknownType)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, t)
	}
	if version != CurrentVersion {
		return nil, fmt.Errorf("%w: %s version %d", ErrUnsupportedVersion, t, version)
	}
	return ev, nil
}

// Encode writes the envelope in its wire form. A zero Version means
// CurrentVersion.
func Encode(env Envelope) ([]byte, error) {
	if env.Event == nil {
		return nil, fmt.Errorf("%w: no payload", ErrMalformed)
	}
	version := env.Version
	if version == 0 {
		version = CurrentVersion
	}
	if err := checkPayload(env.Event.EventType(), version); err != nil {
		return nil, err
	}
	es := encoders.Get().(*encodeState)
	defer es.release()
	buf := &es.buf
	buf.Reset()
	buf.WriteByte(byte(env.Event.EventType()))
	buf.WriteByte(version)
	enc := es.enc
	enc.Reset(buf)
	if err := enc.EncodeArrayLen(3); err != nil {
		return nil, err
	}
	if err := enc.EncodeInt(env.Time); err != nil {
		return nil, err
	}
	if err := enc.EncodeString(env.RequestID); err != nil {
		return nil, err
	}
	if err := enc.Encode(env.Event); err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", env.Event.EventType(), err)
	}
	// The entry outlives the call (Raft keeps it), the buffer does not.
	return bytes.Clone(buf.Bytes()), nil
}

// encodeState is an encoder and its buffer, kept between encodes: a write
// is encoded on the node that takes it and again on the leader.
type encodeState struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	es := &encodeState{}
	es.buf.Grow(512)
	es.enc = msgpack.NewEncoder(&es.buf)
	return es
}}

// release returns es to the pool, unless an unusually large event grew its
// buffer.
func (es *encodeState) release() {
	if es.buf.Cap() > 64<<10 {
		return
	}
	encoders.Put(es)
}

// checkPayload says, as newPayload would but without allocating, whether
// this build writes and reads the given type and version.
func checkPayload(t Type, version uint8) error {
	if t == TypeBatch || t.String() == "Unknown" {
		_, err := newPayload(t, version) // for its error
		return err
	}
	if version != CurrentVersion {
		return fmt.Errorf("%w: %s version %d", ErrUnsupportedVersion, t, version)
	}
	return nil
}

// Decode reads an envelope written by Encode. Unknown types and versions,
// unknown fields and trailing bytes are errors.
func Decode(data []byte) (Envelope, error) {
	if len(data) < headerLen {
		return Envelope{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	t, version := Type(data[0]), data[1]
	ev, err := newPayload(t, version)
	if err != nil {
		return Envelope{}, err
	}
	// The decoder allocates what length prefixes claim: check the claims
	// against the bytes first.
	if err := msgpackcheck.Check(data[headerLen:]); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s: %v", ErrMalformed, t, err)
	}
	ds := decoders.Get().(*decodeState)
	defer ds.release()
	r := &ds.r
	r.Reset(data[headerLen:])
	dec := ds.dec
	dec.Reset(r)
	dec.DisallowUnknownFields(true)
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 3 {
		return Envelope{}, fmt.Errorf("%w: %s body is not a 3-element array", ErrMalformed, t)
	}
	env := Envelope{Version: version, Event: ev}
	if env.Time, err = dec.DecodeInt64(); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s time: %v", ErrMalformed, t, err)
	}
	if env.RequestID, err = dec.DecodeString(); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s request id: %v", ErrMalformed, t, err)
	}
	if err := dec.Decode(ev); err != nil {
		return Envelope{}, fmt.Errorf("%w: %s payload: %v", ErrMalformed, t, err)
	}
	if r.Len() != 0 {
		return Envelope{}, fmt.Errorf("%w: %s has %d trailing bytes", ErrMalformed, t, r.Len())
	}
	return env, nil
}

// decodeState is a decoder and its reader, kept between decodes: every
// node decodes every entry it applies, and fresh ones cost allocations.
type decodeState struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	ds := &decodeState{}
	ds.dec = msgpack.NewDecoder(&ds.r)
	return ds
}}

// release drops the reference to the decoded bytes and returns ds to the
// pool (Decode resets the decoder when it takes ds again). The decoded
// values never point into those bytes: msgpack copies strings and byte
// slices out.
func (ds *decodeState) release() {
	ds.r.Reset(nil)
	decoders.Put(ds)
}
