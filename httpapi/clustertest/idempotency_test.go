package clustertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A create retried with the same Idempotency-Key through another follower
// (as a client failing over would) is applied once.
func TestIdempotencyKey_RetryThroughAnotherNodeAppliesOnce(t *testing.T) {
	c := Start(t, Options{Size: 3})
	leader := c.Leader()
	a, b := c.Nodes[(leader+1)%3], c.Nodes[(leader+2)%3]
	send := func(m *Member) (int, string) {
		resp, err := m.Do("POST", "/v1/sessions", strings.NewReader(`{"user_id":"alice"}`), "Idempotency-Key", "failover-1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("X-Sessiond-Index")
	}
	if code, _ := send(a); code != http.StatusCreated {
		t.Fatalf("create through %s: %d", a.ID, code)
	}
	code, index := send(b)
	if code != http.StatusConflict {
		t.Fatalf("the same create retried through %s: %d, want 409", b.ID, code)
	}
	for _, m := range c.Nodes {
		resp, err := m.Do("GET", "/v1/users/alice/sessions?min_index="+index, nil)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Sessions []json.RawMessage `json:"sessions"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil || len(list.Sessions) != 1 {
			t.Errorf("%s lists %d sessions for alice (%v), want 1", m.ID, len(list.Sessions), err)
		}
	}
}
