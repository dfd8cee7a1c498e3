package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/events"
)

// Index is a position in one group's log: the index a write applied at,
// or the state a read was served in. In a single-region cluster the group
// is the one group (named ""), and an index reads as a plain number, as it
// always has; with regions it reads "group:number" (eu:1234), so that a
// client passing it back has the wait happen on that group's log.
type Index struct {
	Group string
	N     uint64
	// Directory, when not 0, is the global group's index of a directory
	// entry the request wrote before this write (a user's first write, a
	// new email): a read elsewhere needs both to see the write.
	Directory uint64
}

// String is the index as X-Sessiond-Index carries it: with a directory
// entry, a list of both (global:17,us:6), which min_index takes as it is.
func (i Index) String() string {
	own := strconv.FormatUint(i.N, 10)
	if i.Group != defaultGroup {
		own = i.Group + ":" + own
	}
	if i.Directory == 0 {
		return own
	}
	return globalGroup + ":" + strconv.FormatUint(i.Directory, 10) + "," + own
}

// errBadIndex: an index that is neither a number nor group:number.
var errBadIndex = errors.New("an index is a non-negative integer, or group:integer in a cluster with regions")

// ParseIndex reads one index as String writes it.
func ParseIndex(s string) (Index, error) {
	group, num, found := strings.Cut(s, ":")
	if !found {
		group, num = defaultGroup, s
	} else if group == "" {
		return Index{}, errBadIndex
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return Index{}, errBadIndex
	}
	return Index{Group: group, N: n}, nil
}

// ParseIndexes reads a comma-separated list of indexes, at most one per
// group (a client that wrote in several regions passes all it saw).
func ParseIndexes(s string) ([]Index, error) {
	var out []Index
	for part := range strings.SplitSeq(s, ",") {
		i, err := ParseIndex(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

// ErrUnknownGroup: an index names a group this cluster does not have.
var ErrUnknownGroup = errors.New("node: no such group")

// index is n as a position in g's log.
func (g *raftGroup) index(n uint64) Index { return Index{Group: g.name, N: n} }

// appliedIndex is the last index applied here in g's log.
func (g *raftGroup) appliedIndex() Index { return g.index(g.fsm.AppliedIndex()) }

// groupNamed is a group by name, "" meaning this node's own group.
func (n *Node) groupNamed(name string) (*raftGroup, error) {
	if name == "" {
		return n.raftGroup, nil
	}
	if g, ok := n.groups[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownGroup, name)
}

// AppliedIn is the last index applied here in a group ("": this node's
// own).
func (n *Node) AppliedIn(group string) (Index, error) {
	g, err := n.groupNamed(group)
	if err != nil {
		return Index{}, err
	}
	return g.appliedIndex(), nil
}

// ReadBarrierIn is ReadBarrier on a group ("": this node's own).
func (n *Node) ReadBarrierIn(ctx context.Context, group string) (Index, error) {
	g, err := n.groupNamed(group)
	if err != nil {
		return Index{}, err
	}
	i, err := g.ReadBarrier(ctx)
	return g.index(i), err
}

// VouchIn is Vouch on a group ("": this node's own).
func (n *Node) VouchIn(ctx context.Context, group string, maxStale time.Duration) error {
	g, err := n.groupNamed(group)
	if err != nil {
		return err
	}
	return g.Vouch(ctx, maxStale)
}

// UserGroup names the group holding a user's state as this node's state
// lists it ("" for this node's own group, or none yet).
func (n *Node) UserGroup(user events.UserID) string {
	if g := n.localHome(user); g != nil && g != n.raftGroup {
		return g.name
	}
	return ""
}

// PolicyGroup names the group holding the policy ("" for this node's own).
func (n *Node) PolicyGroup() string {
	if g := n.policyGroup(); g != n.raftGroup {
		return g.name
	}
	return ""
}
