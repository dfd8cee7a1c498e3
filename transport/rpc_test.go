package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

type echoRequest struct {
	Text string `msgpack:"text"`
}

// rpcPair starts a server transport with the given handlers and a client
// transport, and returns the client and the server's address.
func rpcPair(t *testing.T, handlers map[string]Handler) (*RPCClient, string) {
	t.Helper()
	srv := listen(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv.HandleRPC(NewRPCServer(ctx, handlers).ServeConn)
	cli := listen(t, Config{})
	c := NewRPCClient(cli)
	t.Cleanup(c.Close)
	return c, srv.Addr()
}

func TestRPC_CallsReachHandlersAndErrorsKeepTheirCode(t *testing.T) {
	c, addr := rpcPair(t, map[string]Handler{
		"echo": func(_ context.Context, peer string, dec *msgpack.Decoder) (any, error) {
			var req echoRequest
			if err := dec.Decode(&req); err != nil {
				return nil, err
			}
			return echoRequest{Text: req.Text + " from " + peer[:3]}, nil
		},
		"refuse": func(context.Context, string, *msgpack.Decoder) (any, error) {
			return nil, &RemoteError{Code: "not_leader", Message: "ask elsewhere"}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 { // the pooled connection is reused
		var resp echoRequest
		if err := c.Call(ctx, addr, "echo", echoRequest{Text: "hi"}, &resp); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.Text != "hi from 127" {
			t.Fatalf("answer %q", resp.Text)
		}
	}
	var re *RemoteError
	if err := c.Call(ctx, addr, "refuse", struct{}{}, nil); !errors.As(err, &re) || re.Code != "not_leader" {
		t.Fatalf("refusal: got %v", err)
	}
	if err := c.Call(ctx, addr, "nope", struct{}{}, nil); !errors.As(err, &re) || re.Code != "unknown_method" {
		t.Fatalf("unknown method: got %v", err)
	}
	// The connection survives remote errors.
	var resp echoRequest
	if err := c.Call(ctx, addr, "echo", echoRequest{Text: "again"}, &resp); err != nil {
		t.Fatal(err)
	}
}

func TestRPC_ContextEndsACallThatHangs(t *testing.T) {
	release := make(chan struct{})
	c, addr := rpcPair(t, map[string]Handler{
		"hang": func(ctx context.Context, _ string, dec *msgpack.Decoder) (any, error) {
			<-release
			return struct{}{}, nil
		},
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Call(ctx, addr, "hang", struct{}{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("the call outlived its context by %s", time.Since(start))
	}
}

func TestRPC_ServerDropsOversizedAndMalformedFrames(t *testing.T) {
	called := make(chan struct{}, 1)
	_, addr := rpcPair(t, map[string]Handler{
		"x": func(context.Context, string, *msgpack.Decoder) (any, error) {
			called <- struct{}{}
			return struct{}{}, nil
		},
	})
	dialer := listen(t, Config{})
	for name, frame := range map[string][]byte{
		"oversized": binary.BigEndian.AppendUint32(nil, MaxFrame+1),
		// An array claiming 2^32-1 elements inside a 5-byte frame.
		"huge claim": append(binary.BigEndian.AppendUint32(nil, 5), 0xdd, 0xff, 0xff, 0xff, 0xff),
		"not array":  append(binary.BigEndian.AppendUint32(nil, 1), 0x01),
	} {
		conn, err := dialer.Dial(addr, KindRPC, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(conn)
		w.Write(frame)
		w.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: the server answered instead of closing", name)
		}
		conn.Close()
	}
	select {
	case <-called:
		t.Fatal("a malformed frame reached a handler")
	default:
	}
}
