package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// cannedAnswer is the follower's answer to one validation: what the ceiling
// handler sends back for every request.
type cannedAnswer struct {
	header http.Header
	body   []byte
}

// replayedHeaders are the headers sessiond sets on a validation; net/http
// adds Date and Content-Length on both servers alike.
var replayedHeaders = []string{"Content-Type", "X-Sessiond-Index", "X-Sessiond-Last-Contact"}

func newCannedAnswer(h http.Header, body []byte) *cannedAnswer {
	c := &cannedAnswer{header: http.Header{}, body: body}
	for _, k := range replayedHeaders {
		if v := h.Values(k); len(v) > 0 {
			c.header[k] = append([]string(nil), v...)
		}
	}
	return c
}

// ServeHTTP answers every GET with the canned answer.
func (c *cannedAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	for k, v := range c.header {
		h[k] = v // shared, never modified
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(c.body)
}

type ceilingServer struct {
	url string
	srv *http.Server
}

// startCeilingServer serves c on 127.0.0.1 (a free port), with the server
// timeouts of sessiond's API (net/http sets connection deadlines per
// request for them, a cost sessiond pays too).
func startCeilingServer(c *cannedAnswer) (*ceilingServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ceiling listener: %w", err)
	}
	srv := &http.Server{
		Handler:           c,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      45 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	go func() { _ = srv.Serve(l) }() // if it fails, requests fail and count as errors
	return &ceilingServer{url: "http://" + l.Addr().String(), srv: srv}, nil
}

func (s *ceilingServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
