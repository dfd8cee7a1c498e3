package node

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/transport"
)

// An RPC about a group this node does not host is refused by name, never
// applied to another group.
func TestGroupRPC_UnknownGroupIsRefused(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	defer n.Close()
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	rpc := transport.NewRPCClient(mux)
	defer rpc.Close()

	entry, err := events.Encode(events.Envelope{RequestID: "r1", Event: &events.SessionCreated{
		SessionID: "s1", UserID: "alice", App: "default", AuthMethod: events.AuthImpersonation,
	}})
	if err != nil {
		t.Fatal(err)
	}
	before := n.AppliedIndex()
	for _, call := range []struct {
		method string
		req    any
	}{
		{rpcApply, applyRequest{Group: "eu", Entry: entry, TimeoutMillis: 1000}},
		{rpcReadIndex, readIndexRequest{Group: "eu"}},
		{rpcRemoveMember, removeMemberRequest{Group: "eu", ID: "n1"}},
	} {
		err := rpc.Call(ctx(t), n.RaftAddr(), call.method, call.req, nil)
		var re *transport.RemoteError
		if !errors.As(err, &re) || re.Code != rpcCodeUnknownGroup {
			t.Errorf("%s for group eu: %v, want a %s refusal", call.method, err, rpcCodeUnknownGroup)
		}
	}
	if _, ok := n.Session("s1"); ok || n.AppliedIndex() != before {
		t.Errorf("a write for an unknown group was applied (index %d → %d)", before, n.AppliedIndex())
	}
	servers, err := n.Servers()
	if err != nil || len(servers) != 1 {
		t.Errorf("servers after a removal for an unknown group: %v, %v", servers, err)
	}
}

// Requests about the default group are encoded exactly as nodes of earlier
// versions, which know no groups, send and read them.
func TestGroupRPC_DefaultGroupKeepsTheEarlierWireForm(t *testing.T) {
	type earlierApply struct {
		Entry         []byte `msgpack:"entry"`
		TimeoutMillis int64  `msgpack:"timeout_ms"`
	}
	type earlierRemove struct {
		ID string `msgpack:"id"`
	}
	for _, c := range []struct {
		name   string
		now, 给 any
	}{} {
		_ = c
	}
	pairs := []struct {
		name         string
		now, earlier any
	}{
		{"apply", applyRequest{Entry: []byte{1, 2}, TimeoutMillis: 5}, earlierApply{Entry: []byte{1, 2}, TimeoutMillis: 5}},
		{"read index", readIndexRequest{}, struct{}{}},
		{"remove member", removeMemberRequest{ID: "n2"}, earlierRemove{ID: "n2"}},
	}
	for _, p := range pairs {
		now, err := msgpack.Marshal(p.now)
		if err != nil {
			t.Fatal(err)
		}
		earlier, err := msgpack.Marshal(p.earlier)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(now, earlier) {
			t.Errorf("%s request for the default group: % x, earlier versions send % x", p.name, now, earlier)
		}
	}
}
