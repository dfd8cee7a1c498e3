package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/events"
	"github.com/sessiond/sessiond/fsm"
)

// Moving a user's home (docs/regions.md#moving-a-home). A PUT of a user
// with another region runs the three writes of events/move.go: freeze the
// user in the old home's group, copy its state into the new home's group,
// name the new home in the directory. Each write may be repeated by any
// node, so a move a node left half done (it stopped, it lost a leader) is
// finished by the next node that meets it: a write refused with ErrMoved,
// or a home the directory names whose group froze the user.
//
// Tokens keep the region they were minted in. A token of a moved user is
// looked up in the group it names, which still holds the frozen copy of the
// session; the node then reads the session where it lives now (holderOf):
// the move's destination once that group has taken the move in, else the
// frozen copy, which nothing can change until then.

// maxMoveHops bounds how many moves a lookup follows (a user moved on
// again before a token of its first home was used).
const maxMoveHops = 8

// moveHome moves a user's home from one region's group to another's.
func (n *Node) moveHome(ctx context.Context, user events.UserID, from, to *raftGroup) (home, error) {
	n.log.Info("moving a user's home", "user_id", string(user), "from", from.name, "to", to.name)
	_, err := from.write(ctx, &events.UserFrozen{UserID: user, To: to.name, Move: newRequestID()})
	if errors.Is(err, fsm.ErrConflict) {
		// Another move of the user is under way: finish it first.
		h, ferr := n.finishMove(ctx, user, from)
		if ferr != nil {
			return home{}, ferr
		}
		if h.raftGroup != to {
			return home{}, fmt.Errorf("%w: the user is being moved to %q", ErrHomeMove, h.name)
		}
		return h, nil
	}
	if err != nil {
		return home{}, err
	}
	return n.finishMove(ctx, user, from)
}

// finishMove completes the move of a user that group from froze: the
// state copied into the move's destination, the directory changed. It
// returns the new home. A user from did not freeze is not moving: from is
// its home.
func (n *Node) finishMove(ctx context.Context, user events.UserID, from *raftGroup) (home, error) {
	to, move, moving := from.fsm.MovedTo(user)
	if !moving {
		// This node may not have applied the freeze yet.
		if err := from.confirm(ctx); err != nil {
			return home{}, err
		}
		if to, move, moving = from.fsm.MovedTo(user); !moving {
			return home{raftGroup: from}, nil
		}
	}
	dest := n.groups[to]
	if dest == nil || !dest.isRegionGroup() {
		return home{}, fmt.Errorf("%w: the user moves to region %q, which this node does not have", ErrUnavailable, to)
	}
	// The frozen state is final: every write for the user since the freeze
	// was refused.
	state, err := from.fsm.ExportUser(user)
	if err != nil {
		return home{}, fmt.Errorf("node: export a moving user: %w", err)
	}
	if _, err := dest.write(ctx, &events.UserImported{UserID: user, From: from.name, Move: move, State: state}); err != nil {
		return home{}, err
	}
	res, err := n.global.write(ctx, &events.HomeMoved{UserID: user, From: from.name, To: to})
	switch {
	case errors.Is(err, fsm.ErrConflict):
		// The directory moved on: the user went elsewhere since.
		return n.homeGroup(ctx, user, false)
	case err != nil:
		return home{}, err
	}
	n.log.Info("moved a user's home", "user_id", string(user), "from", from.name, "to", to)
	return home{raftGroup: dest, directory: res.Index}, nil
}

// writeHome writes ev in the user's home, following a move under way: a
// write the home refuses because the user moved is written again in the
// new home once the move is finished. mint makes the event for a group
// (tokens carry their group's region); it is called again after a move.
func (n *Node) writeHome(ctx context.Context, user events.UserID, h home, mint func(*raftGroup) events.Event) (*fsm.Result, home, error) {
	for range maxMoveHops {
		res, err := h.write(ctx, mint(h.raftGroup))
		if !errors.Is(err, fsm.ErrMoved) {
			return res, h, err
		}
		next, err := n.finishMove(ctx, user, h.raftGroup)
		if err != nil {
			return nil, h, err
		}
		next.directory = max(next.directory, h.directory)
		h = next
	}
	return nil, h, fmt.Errorf("%w: the user's home kept moving", ErrUnavailable)
}

// holderOf is the group that holds, now, a session of user found in g: g,
// or when g froze the user for a move, the move's destination once this
// node's copy of it — vouched fresh first — has taken the move in. Until
// then g's frozen copy is current: nothing changes it.
func (n *Node) holderOf(ctx context.Context, g *raftGroup, user events.UserID) (*raftGroup, error) {
	for range maxMoveHops {
		to, move, moved := g.fsm.MovedTo(user)
		if !moved {
			return g, nil
		}
		dest := n.groups[to]
		if dest == nil || !dest.isRegionGroup() {
			return g, nil
		}
		if !dest.fresh.within(n.cfg.MaxStale) {
			if err := dest.confirm(ctx); err != nil {
				return nil, err
			}
		}
		if dest.fsm.ImportedMove(user) != move {
			return g, nil
		}
		g = dest
	}
	return g, nil
}

// localHolder is holderOf for reads served from memory with no
// confirmation.
func (n *Node) localHolder(g *raftGroup, user events.UserID) *raftGroup {
	for range maxMoveHops {
		to, move, moved := g.fsm.MovedTo(user)
		if !moved {
			return g
		}
		dest := n.groups[to]
		if dest == nil || !dest.isRegionGroup() || dest.fsm.ImportedMove(user) != move {
			return g
		}
		g = dest
	}
	return g
}

// ReadBarrierForToken makes the reads of a token that follow linearizable
// (consistency=leader): a read barrier in the group the token's tag names,
// then, when its session's user moved, in the group the session went to,
// and so on. After a barrier a group's copy holds every write acknowledged
// before it began, a freeze or an import included, so the session is read
// where it lived when the read began. It returns the index of the last
// group confirmed.
func (n *Node) ReadBarrierForToken(ctx context.Context, token string) (Index, error) {
	g := n.anyTokenGroup(token)
	if g == nil {
		return n.ReadBarrierIn(ctx, "")
	}
	h := events.HashToken(token)
	return n.barrierFollowingMoves(ctx, g, func(g *raftGroup) (events.UserID, bool) {
		s, kind, _ := g.fsm.LookupToken(h, n.now())
		return s.UserID, kind != fsm.TokenNone
	})
}

// ReadBarrierForSession is ReadBarrierForToken for a session id.
func (n *Node) ReadBarrierForSession(ctx context.Context, id events.SessionID) (Index, error) {
	g := n.groupOfSession(id)
	if g == nil {
		return n.ReadBarrierIn(ctx, "")
	}
	return n.barrierFollowingMoves(ctx, g, func(g *raftGroup) (events.UserID, bool) {
		s, ok := g.fsm.Session(id)
		return s.UserID, ok
	})
}

// barrierFollowingMoves runs a read barrier in g and, while the session
// userOf finds there belongs to a user g froze for a move the destination
// has taken in, in the destination too.
func (n *Node) barrierFollowingMoves(ctx context.Context, g *raftGroup, userOf func(*raftGroup) (events.UserID, bool)) (Index, error) {
	i, err := g.ReadBarrier(ctx)
	if err != nil {
		return Index{}, err
	}
	for range maxMoveHops {
		user, found := userOf(g)
		if !found {
			return g.index(i), nil
		}
		to, move, moved := g.fsm.MovedTo(user)
		dest := n.groups[to]
		if !moved || dest == nil || !dest.isRegionGroup() {
			return g.index(i), nil
		}
		di, err := dest.ReadBarrier(ctx)
		if err != nil {
			return Index{}, err
		}
		if dest.fsm.ImportedMove(user) != move {
			// Not taken in when the read began: the frozen copy is current.
			return g.index(i), nil
		}
		g, i = dest, di
	}
	return Index{}, fmt.Errorf("%w: the session's home kept moving", ErrUnavailable)
}
