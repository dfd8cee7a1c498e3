package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sessiond/sessiond/httpapi"
	"github.com/sessiond/sessiond/node"
	"github.com/sessiond/sessiond/node/password"
	"github.com/sessiond/sessiond/transport/testkit"
)

// nodeAPIKey is the admin key of the in-process nodes.
const nodeAPIKey = "client-test-admin-key-0123456789"

// startNode starts a single-node cluster and its HTTP API on 127.0.0.1:0
// with its data in a temporary directory, and waits until it is ready. stop
// shuts both down and removes the data. Logs go to logger (nil: nowhere).
func startNode(logger *slog.Logger) (addr string, stop func(), err error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := os.MkdirTemp("", "sessiond-client-")
	if err != nil {
		return "", nil, err
	}
	cfg := node.Default()
	cfg.NodeID = "n1"
	cfg.DataDir = dir
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.Logger = logger
	// Cheap hashing: tests run with -race, where real argon2id is slow.
	cfg.Passwords = password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	n, err := node.New(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	apiCfg := httpapi.Default()
	apiCfg.Backend = n
	apiCfg.APIKeys = []string{nodeAPIKey}
	apiCfg.Logger = logger
	api, err := httpapi.New(apiCfg)
	if err != nil {
		n.Close()
		os.RemoveAll(dir)
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.Close()
		os.RemoveAll(dir)
		return "", nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = api.Serve(l)
	}()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Shutdown(ctx)
		<-served
		_ = n.Close()
		_ = os.RemoveAll(dir)
	}
	addr = "http://" + l.Addr().String()
	ready := testkit.Wait(15*time.Second, func() bool {
		resp, err := http.Get(addr + "/readyz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !ready {
		stop()
		return "", nil, fmt.Errorf("node not ready after 15s")
	}
	return addr, stop, nil
}
