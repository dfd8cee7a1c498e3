package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The RPC protocol is request/response over a pooled connection, one call at
// a time per connection, each message a msgpack array:
//
//	request  [method, body]
//	response [error code, error message, body]
//
// An empty error code means success. Codes are the server's to define; the
// client returns them as *RemoteError so callers can map them to sentinels.

// RemoteError is an error the peer's handler returned.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return "remote: " + e.Code + ": " + e.Message }

// Handler serves one RPC method: it decodes the request body from dec and
// returns the response body, or an error. An error that is (or wraps) a
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

// ServeConn answers calls on one connection until it closes.
func (s *RPCServer) ServeConn(conn net.Conn, peer string) {
	defer conn.Close()
	stop := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	dec := msgpack.NewDecoder(r)
	enc := msgpack.NewEncoder(w)
	for {
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return // closed or broken: the client will redial
		}
		if n != 2 {
			return
		}
		method, err := dec.DecodeString()
		if err != nil {
			return
		}
		code, msg := "", ""
		var body any
		h, ok := s.handlers[method]
		if !ok {
			if err := dec.Skip(); err != nil {
				return
			}
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
		if err := errors.Join(enc.EncodeArrayLen(3), enc.EncodeString(code), enc.EncodeString(msg), enc.Encode(body), w.Flush()); err != nil {
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
	conn net.Conn
	enc  *msgpack.Encoder
	dec  *msgpack.Decoder
	w    *bufio.Writer
}

// NewRPCClient returns a client dialing through t.
func NewRPCClient(t *Transport) *RPCClient {
	return &RPCClient{t: t, maxIdle: 8, idle: make(map[string][]*rpcConn)}
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
	w := bufio.NewWriter(conn)
	return &rpcConn{conn: conn, w: w, enc: msgpack.NewEncoder(w), dec: msgpack.NewDecoder(bufio.NewReader(conn))}, nil
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
// into resp. The call is bounded by ctx; a connection that failed is closed,
// never reused. A failed call's outcome on the peer is unknown: callers
// that retry must make the request idempotent (writes carry a request id).
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
	if err := errors.Join(rc.enc.EncodeArrayLen(2), rc.enc.EncodeString(method), rc.enc.Encode(req), rc.w.Flush()); err != nil {
		stop()
		rc.conn.Close()
		return fmt.Errorf("transport: send %s to %s: %w", method, addr, err)
	}
	code, msg, err := readResponseHead(rc.dec)
	if err != nil {
		stop()
		rc.conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("transport: %s on %s: %w", method, addr, err)
	}
	if code != "" {
		err = &RemoteError{Code: code, Message: msg}
		if skipErr := rc.dec.Skip(); skipErr != nil {
			stop()
			rc.conn.Close()
			return err
		}
	} else if resp == nil {
		err = rc.dec.Skip()
	} else {
		err = rc.dec.Decode(resp)
	}
	if !stop() {
		// ctx ended during the call and moved the deadline: not reusable.
		rc.conn.Close()
		return err
	}
	if err != nil {
		var re *RemoteError
		if !errors.As(err, &re) {
			rc.conn.Close()
			return fmt.Errorf("transport: %s answer from %s: %w", method, addr, err)
		}
	}
	_ = rc.conn.SetDeadline(time.Time{})
	c.put(addr, rc)
	return err
}

func readResponseHead(dec *msgpack.Decoder) (code, msg string, err error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return "", "", err
	}
	if n != 3 {
		return "", "", fmt.Errorf("malformed answer: %d fields", n)
	}
	if code, err = dec.DecodeString(); err != nil {
		return "", "", err
	}
	if msg, err = dec.DecodeString(); err != nil {
		return "", "", err
	}
	return code, msg, nil
}
