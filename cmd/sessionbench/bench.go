package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// bench holds what the phases share: the targets, the client and the
// tokens issued so far.
type bench struct {
	o       options
	log     *slog.Logger
	urls    []string
	apiKey  string
	client  *http.Client
	raw     *rawClient // the phases' client; nil with --client net/http
	targets map[string]rawTarget
	prof    *profiler
	stats   *raftStats    // nil without --raft-stats
	workers []workerState // per worker, so collecting tokens takes no lock

	tokens   []string // access tokens issued (create or seeding)
	maxIndex uint64   // highest Raft index among them

	createURLs   []string // where the create phase sends its requests
	roles        []string // "id=state" of each target, as found
	followerURLs []string

	leaderURL, followerURL, ceilingURL string
	canned                             *cannedAnswer

	createHeaders     []string // name, value, ... of a create
	createHeaderLines []byte   // the same as lines, for the raw client
}

type workerState struct {
	tokens   []string
	maxIndex uint64
	scratch  []byte // the request body being built
	auth     []byte // the Authorization line being built
}

// runPhases runs the selected phases in order, handing each result to
// done as it completes.
func (b *bench) runPhases(ctx context.Context, rep *report, done func(*phaseResult)) error {
	b.workers = make([]workerState, b.o.concurrency)
	b.createURLs = b.urls
	b.createHeaders = []string{"X-API-Key", b.apiKey, "Content-Type", "application/json"}
	b.createHeaderLines = []byte("X-API-Key: " + b.apiKey + "\r\nContent-Type: application/json\r\n")
	validates := b.o.runs(phaseValidate) || b.o.runs(phaseCeiling)
	if b.o.createVia != "all" || validates {
		if err := b.findRoles(ctx); err != nil {
			return err
		}
	}
	if validates && b.followerURL == "" { // fail before the create phase, not after it
		return fmt.Errorf("no follower among the targets (%s): validate-follower and ceiling need one", strings.Join(b.roles, ", "))
	}
	switch b.o.createVia {
	case "leader":
		if b.leaderURL == "" {
			return errors.New("--create-via leader: no leader among the targets")
		}
		b.createURLs = []string{b.leaderURL}
	case "followers":
		if len(b.followerURLs) == 0 {
			return errors.New("--create-via followers: no follower among the targets")
		}
		b.createURLs = b.followerURLs
	}
	if b.o.runs(phaseCreate) {
		target := fmt.Sprintf("round-robin over %d nodes", len(b.createURLs))
		if b.o.createVia != "all" {
			target += " (" + b.o.createVia + ")"
		}
		p := b.phase(ctx, phaseCreate, target, http.StatusCreated, b.create)
		b.collectTokens()
		rep.Phases = append(rep.Phases, p)
		done(p)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if !validates {
		return nil
	}
	if err := b.prepareValidation(ctx); err != nil {
		return err
	}
	if b.o.runs(phaseCeiling) {
		stop, err := b.startCeiling()
		if err != nil {
			return err
		}
		defer stop()
	}
	// With --rounds the two phases alternate, so that a drift in the
	// machine's speed (other tenants, CPU frequency) falls on both alike.
	for round := 1; round <= b.o.rounds; round++ {
		for _, name := range []string{phaseValidate, phaseCeiling} {
			if !b.o.runs(name) {
				continue
			}
			target := b.followerURL
			if name == phaseCeiling {
				target = b.ceilingURL
			}
			p := b.phase(ctx, name, target, http.StatusOK, b.validateOn(target))
			if b.o.rounds > 1 {
				p.Round = round
			}
			rep.Phases = append(rep.Phases, p)
			done(p)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// phase runs the warm-up (bounded like the phase itself, not counted) and
// then the measured part.
func (b *bench) phase(ctx context.Context, name, target string, want int, do requestFunc) *phaseResult {
	if b.o.warmup > 0 {
		drive(ctx, b.o.concurrency, b.o.requests, b.o.warmup, want, do)
	}
	if err := b.prof.begin(name); err != nil {
		b.log.Warn("profile not started", "error", err)
	}
	b.stats.reset()
	out := drive(ctx, b.o.concurrency, b.o.requests, b.o.duration, want, do)
	if err := b.prof.end(name); err != nil {
		b.log.Warn("profile not written", "error", err)
	}
	p := summarize(name, target, out)
	p.RaftStats = b.stats.take()
	return p
}

// create is one POST /v1/sessions, to the nodes in turn.
func (b *bench) create(ctx context.Context, w int, seq int64) (int, error) {
	base := b.createURLs[seq%int64(len(b.createURLs))]
	ws := &b.workers[w]
	ws.scratch = fmt.Appendf(ws.scratch[:0], `{"user_id":"bench-%d","app":"bench","scopes":["read"],"device":{"user_agent":"sessionbench","label":"load"}}`,
		seq%int64(b.o.users))
	var status int
	var data []byte
	var err error
	if b.raw != nil {
		status, data, err = b.raw.request(w, b.targets[base], http.MethodPost, "/v1/sessions", b.createHeaderLines, ws.scratch)
	} else {
		status, data, err = b.sendHTTP(ctx, base, http.MethodPost, "/v1/sessions", b.createHeaders, ws.scratch)
	}
	if err != nil || status != http.StatusCreated {
		return status, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		Index       uint64 `json:"index"`
	}
	if err := json.Unmarshal(data, &tok); err != nil || tok.AccessToken == "" {
		// The body is not quoted: it may hold tokens.
		return status, fmt.Errorf("%w: create answered %d bytes without an access token", errDecode, len(data))
	}
	ws.tokens = append(ws.tokens, tok.AccessToken)
	ws.maxIndex = max(ws.maxIndex, tok.Index)
	return status, nil
}

// sendHTTP is one request of a phase through net/http (--client
// net/http); headers are name, value pairs.
func (b *bench) sendHTTP(ctx context.Context, base, method, path string, headers []string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// collectTokens gathers the workers' tokens (after a drive has ended).
func (b *bench) collectTokens() {
	for i := range b.workers {
		ws := &b.workers[i]
		b.tokens = append(b.tokens, ws.tokens...)
		b.maxIndex = max(b.maxIndex, ws.maxIndex)
		ws.tokens = nil
	}
}

// validateOn returns one GET /v1/session against base, with the tokens in
// turn.
func (b *bench) validateOn(base string) requestFunc {
	return func(ctx context.Context, w int, seq int64) (int, error) {
		token := b.tokens[seq%int64(len(b.tokens))]
		if b.raw == nil {
			status, _, err := b.sendHTTP(ctx, base, http.MethodGet, "/v1/session", []string{"Authorization", "Bearer " + token}, nil)
			return status, err
		}
		ws := &b.workers[w]
		ws.auth = append(append(append(ws.auth[:0], "Authorization: Bearer "...), token...), "\r\n"...)
		status, _, err := b.raw.request(w, b.targets[base], http.MethodGet, "/v1/session", ws.auth, nil)
		return status, err
	}
}

// prepareValidation makes sure there are tokens to validate (creating some
// unmeasured when the create phase did not run), finds a follower and
// records its answer to one validation, made once the follower has applied
// every token's session (min_index).
func (b *bench) prepareValidation(ctx context.Context) error {
	if len(b.tokens) == 0 {
		out := drive(ctx, b.o.concurrency, b.o.seedSessions, b.o.duration, http.StatusCreated, b.create)
		b.collectTokens()
		if len(b.tokens) == 0 {
			p := summarize("seed", "", out)
			return fmt.Errorf("no session could be created to validate (%s)", p.errorSummary())
		}
	}
	canned, err := b.probe(ctx, b.followerURL, b.tokens[0])
	if err != nil {
		return err
	}
	b.canned = canned
	return nil
}

// clusterView is the part of GET /v1/cluster the tool reads.
type clusterView struct {
	NodeID    string `json:"node_id"`
	RaftState string `json:"raft_state"`
}

// findRoles asks each target for its Raft state: the leader, and the
// followers (the first is the one validations go to).
func (b *bench) findRoles(ctx context.Context) error {
	for _, u := range b.urls {
		var view clusterView
		if err := b.getJSON(ctx, u+"/v1/cluster", &view); err != nil {
			return fmt.Errorf("cluster view of %s: %w", u, err)
		}
		b.roles = append(b.roles, view.NodeID+"="+view.RaftState)
		if view.RaftState == "Leader" {
			b.leaderURL = u
		} else {
			b.followerURLs = append(b.followerURLs, u)
		}
	}
	if len(b.followerURLs) > 0 {
		b.followerURL = b.followerURLs[0]
	}
	return nil
}

func (b *bench) getJSON(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", b.apiKey)
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, truncate(data, 200))
	}
	return json.Unmarshal(data, into)
}

// probe validates one token on the follower once it has applied every
// session created (X-Sessiond-Min-Index), and keeps the answer for the
// ceiling.
func (b *bench) probe(ctx context.Context, base, token string) (*cannedAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/session?wait=10s", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Sessiond-Min-Index", strconv.FormatUint(b.maxIndex, 10))
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probe validation on %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("probe validation on %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("probe validation on %s: status %d: %s", base, resp.StatusCode, truncate(body, 200))
	}
	return newCannedAnswer(resp.Header, body), nil
}

// startCeiling starts the bare handler and returns the function that stops
// it.
func (b *bench) startCeiling() (func(), error) {
	if b.canned == nil {
		return nil, errors.New("ceiling: no follower answer to replay")
	}
	srv, err := startCeilingServer(b.canned)
	if err != nil {
		return nil, err
	}
	b.ceilingURL = srv.url
	if b.raw != nil {
		if b.targets[srv.url], err = newRawTarget(srv.url); err != nil {
			srv.close()
			return nil, err
		}
	}
	return func() {
		b.client.CloseIdleConnections()
		if b.raw != nil {
			b.raw.closeTarget(srv.url)
		}
		srv.close()
	}, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
