package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawClient is the phases' HTTP/1.1 client (--client raw, the default for
// http:// targets), in the manner of wrk: each worker keeps one keep-alive
// connection per target, writes its requests into one reused buffer and
// parses the answers itself. net/http's client costs a goroutine hand-off
// each way and some tens of allocations per request; in a local run the
// load generator shares the CPUs with the nodes it measures, so what it
// spends is taken from them (net/http's client took a fifth of the CPU of a
// create run). The control requests (roles, the probe) keep net/http.
type rawClient struct {
	ctx     context.Context // ends every connection's current request when done
	timeout time.Duration   // per request
	dialer  net.Dialer
	workers []rawWorker
}

type rawWorker struct {
	conns map[string]*rawConn // by target base URL
	req   []byte              // the request being written
	body  []byte              // the last answer's body
}

type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
	stop func() bool // unregisters the ctx hook
}

// rawTarget is a base URL prepared for the raw client.
type rawTarget struct {
	base string // as given, the key of the worker's connection
	addr string // host:port to dial
	host string // Host header
}

var errRawScheme = errors.New("the raw client speaks plain http only")

func newRawTarget(base string) (rawTarget, error) {
	u, err := url.Parse(base)
	if err != nil {
		return rawTarget{}, err
	}
	if u.Scheme != "http" {
		return rawTarget{}, fmt.Errorf("%w: %s", errRawScheme, base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return rawTarget{base: base, addr: addr, host: u.Host}, nil
}

func newRawClient(ctx context.Context, workers int, timeout time.Duration) *rawClient {
	c := &rawClient{ctx: ctx, timeout: timeout, workers: make([]rawWorker, workers),
		dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
	for i := range c.workers {
		c.workers[i].conns = map[string]*rawConn{}
	}
	return c
}

// close closes every connection (after the workers have stopped).
func (c *rawClient) close() {
	for i := range c.workers {
		for k, rc := range c.workers[i].conns {
			rc.close()
			delete(c.workers[i].conns, k)
		}
	}
}

// closeTarget closes the workers' connections to one target.
func (c *rawClient) closeTarget(base string) {
	for i := range c.workers {
		if rc := c.workers[i].conns[base]; rc != nil {
			rc.close()
			delete(c.workers[i].conns, base)
		}
	}
}

func (rc *rawConn) close() {
	rc.stop()
	rc.conn.Close()
}

// request sends one request from worker w to t: method and path, the extra
// header lines (each ending in \r\n), and body (nil for none). It returns
// the status and the answer's body, which stays valid until the worker's
// next request. A connection that failed, or that the server closes, is
// not used again.
func (c *rawClient) request(w int, t rawTarget, method, path string, headers, body []byte) (int, []byte, error) {
	wk := &c.workers[w]
	rc := wk.conns[t.base]
	if rc == nil {
		conn, err := c.dialer.DialContext(c.ctx, "tcp", t.addr)
		if err != nil {
			return 0, nil, err
		}
		rc = &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10)}
		rc.stop = context.AfterFunc(c.ctx, func() { _ = conn.SetDeadline(time.Now()) })
		wk.conns[t.base] = rc
	}
	b := append(wk.req[:0], method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\n"...)
	b = append(b, headers...)
	if body != nil {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	wk.req = b

	_ = rc.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := c.ctx.Err(); err != nil {
		return 0, nil, err
	}
	status, keep, err := c.exchange(wk, rc, b, method == "HEAD")
	if err != nil || !keep {
		rc.close()
		delete(wk.conns, t.base)
	}
	if err != nil && c.ctx.Err() != nil {
		err = c.ctx.Err()
	}
	return status, wk.body, err
}

// exchange writes the request and reads the answer into wk.body. keep
// reports whether the connection may carry another request.
func (c *rawClient) exchange(wk *rawWorker, rc *rawConn, req []byte, head bool) (status int, keep bool, err error) {
	wk.body = wk.body[:0]
	if _, err := rc.conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.x SP 3DIGIT SP reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise; keep it simple
	length, chunked := int64(-1), false
	for {
		line, err := rc.r.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return status, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case head || status == 204 || status == 304 || status < 200:
		return status, keep, nil
	case chunked:
		return status, keep, readChunked(rc.r, wk)
	case length >= 0:
		if length > 1<<20 {
			return status, false, fmt.Errorf("answer of %d bytes", length)
		}
		wk.body = grow(wk.body, int(length))
		_, err := io.ReadFull(rc.r, wk.body)
		return status, keep, err
	}
	// No length: the body runs to the end of the connection.
	data, err := io.ReadAll(io.LimitReader(rc.r, 1<<20))
	wk.body = append(wk.body, data...)
	return status, false, err
}

func readChunked(r *bufio.Reader, wk *rawWorker) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 || int64(len(wk.body))+n > 1<<20 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the empty line
				line, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		start := len(wk.body)
		wk.body = grow(wk.body, start+int(n))
		if _, err := io.ReadFull(r, wk.body[start:]); err != nil {
			return err
		}
		if _, err := r.Discard(2); err != nil { // CRLF after the chunk
			return err
		}
	}
}

// grow returns b resized to n bytes, keeping its contents and reusing its
// array when it is large enough.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}
