package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Users, policy, cluster and health (docs/api.md#endpoints).

// SetUser sets a user's email and/or password, creating the user if needed
// (admin). Replacing a password counts as a password change.
func (c *Client) SetUser(ctx context.Context, userID string, req SetUserRequest) (*UserChange, error) {
	var out UserChange
	_, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/users/" + seg(userID), body: req, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// User returns a user's record (admin).
func (c *Client) User(ctx context.Context, userID string) (*User, error) {
	var out User
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/users/" + seg(userID), admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes a user and revokes its sessions (admin).
func (c *Client) DeleteUser(ctx context.Context, userID string) (*UserChange, error) {
	var out UserChange
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/users/" + seg(userID), admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPassword changes (PasswordChange) or resets (PasswordReset) a user's
// password (admin).
func (c *Client) SetPassword(ctx context.Context, userID, password, reason string) (*UserChange, error) {
	body := map[string]string{"password": password}
	if reason != "" {
		body["reason"] = reason
	}
	var out UserChange
	_, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/users/" + seg(userID) + "/password", body: body, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetUserLimit sets a user's own session limit (0: unlimited); nil removes
// it, so the global limit applies (admin).
func (c *Client) SetUserLimit(ctx context.Context, userID string, maxSessions *int) (*UserLimit, error) {
	body := struct {
		MaxSessions *int `json:"max_sessions"`
	}{maxSessions}
	var out UserLimit
	_, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/users/" + seg(userID) + "/limits", body: body, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Unlock clears a user's lockout (admin) and returns the write's index.
func (c *Client) Unlock(ctx context.Context, userID string) (uint64, error) {
	var out struct {
		Index uint64 `json:"index"`
	}
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/users/" + seg(userID) + "/unlock", admin: true, kind: idempotent}, &out)
	if err != nil {
		return 0, err
	}
	return out.Index, nil
}

// Policy returns the policy in force (admin).
func (c *Client) Policy(ctx context.Context) (*Policy, error) {
	var out Policy
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/policy", admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPolicy replaces the whole policy (admin): fetch it with Policy, change
// what differs, and put it back. It applies to sessions created after it.
// Two administrators doing this at once may overwrite each other's change.
func (c *Client) SetPolicy(ctx context.Context, p Policy) (*Policy, error) {
	p.Index = 0 // not a field the server accepts
	var out Policy
	_, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/policy", body: p, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPolicyJSON replaces the whole policy with a JSON object in the API's
// form (admin), sent as it is: a field left out takes its default, and
// refresh_ttl left out or null follows access_ttl.
func (c *Client) SetPolicyJSON(ctx context.Context, policy json.RawMessage) (*Policy, error) {
	if !json.Valid(policy) {
		return nil, errors.New("client: the policy is not valid JSON")
	}
	var out Policy
	_, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/policy", body: policy, admin: true, kind: idempotent}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Cluster returns the answering node's view of the cluster (admin).
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/cluster", admin: true, kind: read}, &out)
	if err != nil {
		return nil, err
	}
	if out.Members == nil {
		out.Members = []Member{}
	}
	return &out, nil
}

// RemoveMember removes a node from the Raft configuration (admin).
func (c *Client) RemoveMember(ctx context.Context, nodeID string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/cluster/members/" + seg(nodeID), admin: true, kind: idempotent}, nil)
	return err
}

// Healthz checks that the node in use serves HTTP. With several addresses
// or retries the answer may come from another node: for one node's
// health, use a client of that address alone with WithRetry(0, 0).
func (c *Client) Healthz(ctx context.Context) (*Health, error) {
	var out Health
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/healthz", kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Readyz checks that the node in use knows a leader and has caught up; a
// node that is not ready answers an error matching ErrUnavailable (see
// Healthz about several addresses).
func (c *Client) Readyz(ctx context.Context) (*Health, error) {
	var out Health
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/readyz", kind: read}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
