package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// pipeConn is a net.Conn whose peer sent in and then closed its side;
// what is written to it is kept in out.
type pipeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
func newPipeConn(in []byte) *pipeConn                { return &pipeConn{in: bytes.NewReader(in)} }

// show prints a decoded value for comparison: maps print sorted, and a NaN
// equals itself.
func show(v any) string { return fmt.Sprintf("%#v", v) }

// decodeAll decodes n values of any type.
func decodeAll(dec *msgpack.Decoder, n int) ([]any, error) {
	out := make([]any, n)
	for i := range out {
		var err error
		if out[i], err = dec.DecodeInterface(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// frameBytes is the frame writeFrame sends for the values.
func frameBytes(t testing.TB, values ...any) []byte {
	t.Helper()
	c := newPipeConn(nil)
	if err := newFramer(c).writeFrame(values...); err != nil {
		t.Fatal(err)
	}
	return c.out.Bytes()
}

// rpcSeeds are small request streams: calls to known and unknown methods,
// and the malformed frames TestRPC_ServerDropsOversizedAndMalformedFrames
// sends.
func rpcSeeds(f *testing.F) [][]byte {
	two := append(frameBytes(f, "echo", map[string]any{"a": []any{1, "x", nil}}), frameBytes(f, "text", echoRequest{Text: "hi"})...)
	return [][]byte{
		two,
		frameBytes(f, "nope", nil),
		append(frameBytes(f, "fail", true), frameBytes(f, "echo", 1.5)...),
		binary.BigEndian.AppendUint32(nil, MaxFrame+1),
		append(binary.BigEndian.AppendUint32(nil, 5), 0xdd, 0xff, 0xff, 0xff, 0xff),
		append(binary.BigEndian.AppendUint32(nil, 1), 0x01),
		{0, 0, 0},
	}
}

// FuzzReadFrame checks the framer on any bytes: no panic, no buffer larger
// than MaxFrame, and a frame it accepts, written again, reads back as the
// same values.
func FuzzReadFrame(f *testing.F) {
	for _, s := range rpcSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFramer(newPipeConn(data))
		dec, err := fr.readFrame(2)
		if cap(fr.in) > MaxFrame {
			t.Fatalf("a frame buffer of %d bytes", cap(fr.in))
		}
		if err != nil {
			return
		}
		values, err := decodeAll(dec, 2)
		if err != nil {
			return // well-formed msgpack this decoder cannot represent (an ext type)
		}
		again := frameBytes(t, values...)
		dec, err = newFramer(newPipeConn(again)).readFrame(2)
		if err != nil {
			t.Fatalf("the frame written again (%x) does not read: %v", again, err)
		}
		back, err := decodeAll(dec, 2)
		if err != nil || show(back) != show(values) {
			t.Fatalf("frame read %s, written again and read %s (%v)", show(values), show(back), err)
		}
	})
}

// FuzzServeConn feeds any bytes to an RPC server as a peer's connection.
// The server must not panic or allocate more than a frame's worth beyond
// what the input can hold, must answer every well-formed call in order
// (the handler's answer, or its error code) and nothing else, and must
// stop at the first malformed frame.
func FuzzServeConn(f *testing.F) {
	for _, s := range rpcSeeds(f) {
		f.Add(s)
	}
	handlers := map[string]Handler{
		"echo": func(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
			return dec.DecodeInterface()
		},
		"text": func(_ context.Context, _ string, dec *msgpack.Decoder) (any, error) {
			var req echoRequest
			if err := dec.Decode(&req); err != nil {
				return nil, err
			}
			return req, nil
		},
		"fail": func(context.Context, string, *msgpack.Decoder) (any, error) {
			return nil, &RemoteError{Code: "refused", Message: "no"}
		},
	}
	srv := NewRPCServer(context.Background(), handlers)
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := newPipeConn(data)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		srv.ServeConn(conn, "peer")
		runtime.ReadMemStats(&m1)
		// One frame buffer (a header may claim MaxFrame before the bytes
		// arrive), the rest in proportion to the input.
		if alloc, limit := m1.TotalAlloc-m0.TotalAlloc, uint64(MaxFrame+1<<20+1024*len(data)); alloc > limit {
			t.Fatalf("serving %d bytes allocated %d (limit %d)", len(data), alloc, limit)
		}

		// The calls as the server should have read them.
		type answer struct {
			code string
			body string
		}
		var want []answer
		in := newFramer(newPipeConn(data))
		for {
			dec, err := in.readFrame(2)
			if err != nil {
				break
			}
			method, err := dec.DecodeString()
			if err != nil {
				break
			}
			var a answer
			switch method {
			case "echo":
				v, err := dec.DecodeInterface()
				a = answer{body: show(v)}
				if err != nil {
					a = answer{code: "internal", body: show(nil)}
				}
			case "text":
				var req echoRequest
				a = answer{body: show(req)}
				if err := dec.Decode(&req); err != nil {
					a = answer{code: "internal", body: show(nil)}
				} else {
					a.body = show(map[string]any{"text": req.Text})
				}
			case "fail":
				a = answer{code: "refused", body: show(nil)}
			default:
				a = answer{code: "unknown_method", body: show(nil)}
			}
			want = append(want, a)
		}

		out := newFramer(newPipeConn(conn.out.Bytes()))
		for i := 0; ; i++ {
			dec, err := out.readFrame(3)
			if err != nil {
				if i != len(want) {
					t.Fatalf("%d answers, want %d (then: %v)", i, len(want), err)
				}
				break
			}
			if i >= len(want) {
				t.Fatalf("more answers than calls")
			}
			code, err1 := dec.DecodeString()
			_, err2 := dec.DecodeString()
			body, err3 := dec.DecodeInterface()
			if err1 != nil || err2 != nil || err3 != nil {
				t.Fatalf("answer %d is malformed: %v %v %v", i, err1, err2, err3)
			}
			if code != want[i].code || show(body) != want[i].body {
				t.Fatalf("answer %d: code %q body %s, want %q %s", i, code, show(body), want[i].code, want[i].body)
			}
		}
	})
}
