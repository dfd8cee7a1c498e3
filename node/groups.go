package node

import (
	"fmt"

	"github.com/sessiond/sessiond/transport"
)

// The groups a node hosts, by name. Node-to-node RPCs about one group's log
// (forwarded writes, read indexes, member removals) name it; a request
// without a name is about the default group, which is what nodes of
// earlier versions, hosting only that group, send. The map is built in New
// and read-only after.

// rpcCodeUnknownGroup answers an RPC about a group this node does not host.
const rpcCodeUnknownGroup = "unknown_group"

// hostedGroup is the group an RPC names, or a RemoteError saying this node
// does not host it.
func (n *Node) hostedGroup(name string) (*raftGroup, error) {
	if g, ok := n.groups[name]; ok {
		return g, nil
	}
	return nil, &transport.RemoteError{Code: rpcCodeUnknownGroup, Message: fmt.Sprintf("group %q is not hosted here", name)}
}
