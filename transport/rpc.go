package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/transport/msgpackcheck"
)

// The RPC protocol is request/response over a pooled connection, one call at
// a time per connection. Each message is a frame — a 4-byte big-endian
// length, then that many bytes of msgpack — holding an array:
//
//	request  [method, body]
//	response [error code, error message, body]
//
// Frames are bounded (MaxFrame) and their msgpack is checked for claims
// larger than the frame before decoding, so a broken or hostile peer cannot
// make a node allocate more than a frame. An empty error code means
// success; codes are the server's to define, and the client returns them as
// *RemoteError so callers can map them to sentinels.

// MaxFrame is the largest RPC message accepted.
const MaxFrame = 4 << 20

// RemoteError is an error the peer's handler returned.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return "remote: " + e.Code + ": " + e.Message }

// Handler serves one RPC method: it decodes the request body from dec and
// returns the response body, or an error. dec reads the connection's
// buffer and is valid only until the handler returns. An error that is (or wraps) a
// *RemoteError keeps its code; any other becomes code "internal".
type Handler func(ctx context.Context, peer string, dec *msgpack.Decoder) (any, error)

// RPCServer dispatches RPC connections to handlers by method name.
type RPCServer struct {
	handlers map[string]Handler
	ctx      context.Context
}

// NewRPCServer serves the given methods until ctx ends.
func NewRPCServer(ctx context.Context, handlers map[string]Handler) *RPCServer {
	return &RPCServer{handlers: handlers, ctx: ctx}
}

// framer reads and writes the frames of one connection. It keeps its
// buffers, encoder and decoder from one message to the next (a forwarded
// write is one request and one answer, thousands a second), so a message
// costs no allocation beyond what decoding its values needs. One goroutine
// at a time uses a framer: the connection's server loop, or the client
// holding the pooled connection.
type framer struct {
	conn net.Conn
	r    *bufio.Reader
	out  bytes.Buffer // the frame being written: length, then msgpack
	enc  *msgpack.Encoder
	in   []byte       // the body of the frame last read
	rd   bytes.Reader // over in
	dec  *msgpack.Decoder
}

// keepBuffer is the largest buffer a connection keeps between messages;
// a larger frame's buffer is dropped after use.
const keepBuffer = 64 << 10

func newFramer(conn net.Conn) *framer {
	f := &framer{conn: conn, r: bufio.NewReader(conn)}
	f.enc = msgpack.NewEncoder(&f.out)
	f.dec = msgpack.NewDecoder(&f.rd)
	return f
}

// writeFrame encodes the values as one msgpack array in one frame and
// writes it with one write.
func (f *framer) writeFrame(values ...any) error {
	defer f.trimOut()
	f.out.Reset()
	f.out.Write([]byte{0, 0, 0, 0}) // the length, filled in below
	f.enc.Reset(&f.out)
	if err := f.enc.EncodeArrayLen(len(values)); err != nil {
		return err
	}
	for _, v := range values {
		if err := f.enc.Encode(v); err != nil {
			return err
		}
	}
	frame := f.out.Bytes()
	n := len(frame) - 4
	if n > MaxFrame {
		return fmt.Errorf("transport: message of %d bytes exceeds %d", n, MaxFrame)
	}
	binary.BigEndian.PutUint32(frame[:4], uint32(n))
	_, err := f.conn.Write(frame)
	return err
}

func (f *framer) trimOut() {
	if f.out.Cap() > keepBuffer {
		f.out = bytes.Buffer{}
	}
}

// readFrame reads one frame and returns a decoder positioned inside its
// array, after checking that the array has the expected length. The
// decoder reads the framer's buffer: it is valid until the next readFrame
// or release.
func (f *framer) readFrame(fields int) (*msgpack.Decoder, error) {
	var head [4]byte
	if _, err := io.ReadFull(f.r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("transport: frame of %d bytes exceeds %d", n, MaxFrame)
	}
	if uint32(cap(f.in)) < n {
		f.in = make([]byte, n)
	}
	body := f.in[:n]
	if _, err := io.ReadFull(f.r, body); err != nil {
		return nil, err
	}
	if err := msgpackcheck.Check(body); err != nil {
		return nil, fmt.Errorf("transport: malformed frame: %w", err)
	}
	f.rd.Reset(body)
	f.dec.Reset(&f.rd)
	if got, err := f.dec.DecodeArrayLen(); err != nil || got != fields {
		return nil, fmt.Errorf("transport: malformed frame: want %d fields, got %d (%v)", fields, got, err)
	}
	return f.dec, nil
}

// release lets go of a large read buffer once its frame is decoded.
func (f *framer) release() {
	f.rd.Reset(nil)
	if cap(f.in) > keepBuffer {
		f.in = nil
	}
}

// ServeConn answers calls on one connection until it closes.
func (s *RPCServer) ServeConn(conn net.Conn, peer string) {
	defer conn.Close()
	stop := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stop()
	f := newFramer(conn)
	for {
		dec, err := f.readFrame(2)
		if err != nil {
			return // closed, broken or malformed: the client will redial
		}
		method, err := dec.DecodeString()
		if err != nil {
			return
		}
		code, msg := "", ""
		var body any
		if h, ok := s.handlers[method]; !ok {
			code, msg = "unknown_method", "no RPC method "+method
		} else if body, err = h(s.ctx, peer, dec); err != nil {
			var re *RemoteError
			if errors.As(err, &re) {
				code, msg = re.Code, re.Message
			} else {
				code, msg = "internal", err.Error()
			}
			body = nil
		}
		f.release()
		if err := f.writeFrame(code, msg, body); err != nil {
			return
		}
	}
}

// RPCClient calls peers, keeping a few idle connections to each.
type RPCClient struct {
	t       *Transport
	maxIdle int
	mu      sync.Mutex
	idle    map[string][]*rpcConn
}

type rpcConn struct {
	*framer
}

// NewRPCClient returns a client dialing through t.
func NewRPCClient(t *Transport) *RPCClient {
	return &RPCClient{t: t, maxIdle: 64, idle: make(map[string][]*rpcConn)}
}

func (c *RPCClient) get(addr string, timeout time.Duration) (*rpcConn, error) {
	c.mu.Lock()
	if list := c.idle[addr]; len(list) > 0 {
		rc := list[len(list)-1]
		c.idle[addr] = list[:len(list)-1]
		c.mu.Unlock()
		return rc, nil
	}
	c.mu.Unlock()
	conn, err := c.t.Dial(addr, KindRPC, timeout)
	if err != nil {
		return nil, err
	}
	return &rpcConn{newFramer(conn)}, nil
}

func (c *RPCClient) put(addr string, rc *rpcConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[addr]) >= c.maxIdle {
		rc.conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], rc)
}

// Close closes the idle connections.
func (c *RPCClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, list := range c.idle {
		for _, rc := range list {
			rc.conn.Close()
		}
		delete(c.idle, addr)
	}
}

// Call invokes method on the peer at addr with req and decodes the answer
// into resp (nil to ignore it). The call is bounded by ctx; a connection
// that failed is closed, never reused. A failed call's outcome on the peer
// is unknown: callers that retry must make the request idempotent (writes
// carry a request id).
func (c *RPCClient) Call(ctx context.Context, addr, method string, req, resp any) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	rc, err := c.get(addr, time.Until(deadline))
	if err != nil {
		return err
	}
	_ = rc.conn.SetDeadline(deadline)
	// Cancelling ctx interrupts the call by moving the deadline to now.
	stop := context.AfterFunc(ctx, func() { _ = rc.conn.SetDeadline(time.Now()) })
	fail := func(err error) error {
		stop()
		rc.conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !time.Now().Before(deadline) {
			// The connection's deadline (the context's) fired first.
			return context.DeadlineExceeded
		}
		return fmt.Errorf("transport: %s on %s: %w", method, addr, err)
	}
	if err := rc.writeFrame(method, req); err != nil {
		return fail(err)
	}
	dec, err := rc.readFrame(3)
	if err != nil {
		return fail(err)
	}
	code, err := dec.DecodeString()
	if err != nil {
		return fail(err)
	}
	msg, err := dec.DecodeString()
	if err != nil {
		return fail(err)
	}
	var callErr error
	if code != "" {
		callErr = &RemoteError{Code: code, Message: msg}
	} else if resp != nil {
		if err := dec.Decode(resp); err != nil {
			return fail(fmt.Errorf("decode answer: %w", err))
		}
	}
	rc.release()
	if !stop() {
		// ctx ended during the call and moved the deadline: not reusable.
		rc.conn.Close()
		return callErr
	}
	_ = rc.conn.SetDeadline(time.Time{})
	c.put(addr, rc)
	return callErr
}
