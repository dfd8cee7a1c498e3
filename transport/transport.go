package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Kind is the first byte of a connection: what speaks on it.
type Kind byte

const (
	// KindRaft is Raft traffic of the default group (a node's only group
	// before a node hosted several).
	KindRaft Kind = 'R'
	KindRPC  Kind = 'C'
	// KindRaftGroup is Raft traffic of a named group: the preamble names it
	// after the dialer's address.
	KindRaftGroup Kind = 'G'
)

// ErrClosed is returned once the transport is closed.
var ErrClosed = errors.New("transport: closed")

// ErrCut is returned when the fault layer cuts the connection (tests only).
var ErrCut = errors.New("transport: connection cut by the fault layer")

// Config configures a Transport.
type Config struct {
	// BindAddr is the TCP address to listen on.
	BindAddr string
	// AdvertiseAddr is the host:port peers dial; empty means the bound address.
	AdvertiseAddr string
	// TLS, when set, makes every connection mutual TLS with the cluster CA.
	TLS *MutualTLS
	// Faults, when set, lets tests cut pairs of nodes.
	Faults *Faults
	// HandshakeTimeout bounds TLS and the opening bytes of a connection.
	HandshakeTimeout time.Duration
	// Logger receives connection errors.
	Logger *slog.Logger
}

// Transport listens for node-to-node connections and dials peers.
type Transport struct {
	cfg         Config
	ln          net.Listener
	advertise   string
	advertiseMu sync.RWMutex
	log         *slog.Logger

	raftConns chan net.Conn // the default group's inbound Raft connections
	groupsMu  sync.Mutex
	groups    map[string]*groupLayer // the named groups attached
	rpc       func(conn net.Conn, peer string)
	rpcMu     sync.RWMutex

	closeOnce sync.Once
	closed    chan struct{}
	closedCtx context.Context // done once closed: aborts handshakes in progress
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// maxAddrLen bounds the advertised address in a connection's preamble.
const maxAddrLen = 255

// Listen starts accepting connections.
func Listen(cfg Config) (*Transport, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	advertise := cfg.AdvertiseAddr
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	if len(advertise) > maxAddrLen {
		ln.Close()
		return nil, fmt.Errorf("transport: advertise address longer than %d bytes", maxAddrLen)
	}
	t := &Transport{
		cfg:       cfg,
		ln:        ln,
		advertise: advertise,
		log:       cfg.Logger.With("subsystem", "transport"),
		raftConns: make(chan net.Conn, 16),
		groups:    make(map[string]*groupLayer),
		closed:    make(chan struct{}),
	}
	t.closedCtx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address peers reach this transport at.
func (t *Transport) Addr() string {
	t.advertiseMu.RLock()
	defer t.advertiseMu.RUnlock()
	return t.advertise
}

// SetAdvertise changes the address announced to peers (the listener was
// bound first, so a port chosen by the OS can be advertised). Call it before
// any connection is made.
func (t *Transport) SetAdvertise(addr string) error {
	if len(addr) > maxAddrLen {
		return fmt.Errorf("transport: advertise address longer than %d bytes", maxAddrLen)
	}
	t.advertiseMu.Lock()
	t.advertise = addr
	t.advertiseMu.Unlock()
	return nil
}

// HandleRPC sets the function that serves RPC connections.
func (t *Transport) HandleRPC(serve func(conn net.Conn, peer string)) {
	t.rpcMu.Lock()
	t.rpc = serve
	t.rpcMu.Unlock()
}

// Close stops listening and waits for the accept loop. Connections already
// handed out are their owners' to close.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.closed)
		t.cancel()
		err = t.ln.Close()
		t.wg.Wait()
		// Raft connections accepted but never taken by Raft.
		closeQueued(t.raftConns)
		t.groupsMu.Lock()
		for _, l := range t.groups {
			closeQueued(l.conns)
		}
		t.groupsMu.Unlock()
	})
	return err
}

func closeQueued(conns chan net.Conn) {
	for {
		select {
		case c := <-conns:
			c.Close()
		default:
			return
		}
	}
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closed:
				return
			default:
			}
			t.log.Warn("accept failed", "error", err)
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.handshake(conn)
		}()
	}
}

// handshake authenticates an inbound connection (TLS), reads its preamble
// and hands it to Raft or the RPC server.
func (t *Transport) handshake(raw net.Conn) {
	conn := raw
	// Until the connection is handed over, closing the transport ends it.
	abort := context.AfterFunc(t.closedCtx, func() { raw.Close() })
	defer abort()
	_ = conn.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	if t.cfg.TLS != nil {
		tc := tls.Server(raw, t.cfg.TLS.Server)
		if err := tc.Handshake(); err != nil {
			t.log.Warn("refused a peer: TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
			raw.Close()
			return
		}
		conn = tc
	}
	kind, peer, group, err := readPreamble(conn)
	if err != nil {
		t.log.Debug("refused a connection: bad preamble", "remote", raw.RemoteAddr().String(), "error", err)
		conn.Close()
		return
	}
	if !abort() {
		return // the transport closed meanwhile
	}
	_ = conn.SetDeadline(time.Time{})
	conn, err = t.cfg.Faults.track(conn, t.Addr(), peer)
	if err != nil {
		return
	}
	switch kind {
	case KindRaft:
		select {
		case t.raftConns <- conn:
		case <-t.closed:
			conn.Close()
		}
	case KindRaftGroup:
		t.groupsMu.Lock()
		l, ok := t.groups[group]
		t.groupsMu.Unlock()
		if !ok {
			// Not hosted here (yet): the dialer's Raft retries.
			t.log.Debug("refused a Raft connection for a group not hosted here", "peer", peer, "group", group)
			conn.Close()
			return
		}
		l.hand(conn)
	case KindRPC:
		t.rpcMu.RLock()
		serve := t.rpc
		t.rpcMu.RUnlock()
		if serve == nil {
			conn.Close()
			return
		}
		// Served outside the accept bookkeeping: an RPC connection lives as
		// long as its client keeps it, and Close must not wait for that.
		go serve(conn, peer)
	}
}

// readPreamble reads a connection's opening bytes: its kind, the dialer's
// advertised address and, for KindRaftGroup, the group's name.
func readPreamble(conn net.Conn) (kind Kind, peer, group string, err error) {
	var head [2]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return 0, "", "", err
	}
	kind = Kind(head[0])
	if kind != KindRaft && kind != KindRPC && kind != KindRaftGroup {
		return 0, "", "", fmt.Errorf("unknown connection kind %q", head[0])
	}
	addr := make([]byte, head[1])
	if _, err := io.ReadFull(conn, addr); err != nil {
		return 0, "", "", err
	}
	if kind != KindRaftGroup {
		return kind, string(addr), "", nil
	}
	if _, err := io.ReadFull(conn, head[:1]); err != nil {
		return 0, "", "", err
	}
	name := make([]byte, head[0])
	if _, err := io.ReadFull(conn, name); err != nil {
		return 0, "", "", err
	}
	if err := ValidGroupName(string(name)); err != nil {
		return 0, "", "", err
	}
	return kind, string(addr), string(name), nil
}

// Dial connects to a peer for the given kind of traffic.
func (t *Transport) Dial(addr string, kind Kind, timeout time.Duration) (net.Conn, error) {
	if kind == KindRaftGroup {
		return nil, errors.New("transport: dial a named group through its RaftGroupLayer")
	}
	return t.dial(addr, kind, "", timeout)
}

func (t *Transport) dial(addr string, kind Kind, group string, timeout time.Duration) (net.Conn, error) {
	select {
	case <-t.closed:
		return nil, ErrClosed
	default:
	}
	self := t.Addr()
	if t.cfg.Faults.Cut(self, addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrCut)
	}
	select {
	case <-t.closed:
		return nil, ErrClosed
	default:
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	_ = conn.SetDeadline(time.Now().Add(max(timeout, t.cfg.HandshakeTimeout)))
	if t.cfg.TLS != nil {
		tc := tls.Client(raw, t.cfg.TLS.Client)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	preamble := append([]byte{byte(kind), byte(len(self))}, self...)
	if kind == KindRaftGroup {
		preamble = append(append(preamble, byte(len(group))), group...)
	}
	if _, err := conn.Write(preamble); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	tracked, err := t.cfg.Faults.track(conn, self, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return tracked, nil
}
