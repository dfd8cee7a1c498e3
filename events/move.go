package events

// Moving a user's home from one region to another (docs/regions.md), in
// three writes to three groups, each of which any node may repeat:
//
//  1. UserFrozen, in the old home's group: from then on that group
//     refuses every write for the user; its state of the user stays, for
//     the move to copy and for lookups of the user's tokens to be sent on.
//  2. UserImported, in the new home's group: the user's whole state as the
//     old group froze it.
//  3. HomeMoved, in the global group: the directory names the new home.
//
// Move names one move: a repeated UserImported of the same move changes
// nothing, so a node finishing a move late cannot undo writes the new home
// took since.

// UserFrozen stops every write for a user in its home's group: the user is
// moving to region To. A user frozen for another move is refused.
type UserFrozen struct {
	UserID UserID `msgpack:"uid"`
	To     string `msgpack:"to"`
	Move   string `msgpack:"move"`
}

// UserImported gives a region's group a user's whole state — sessions,
// credentials, own limit, lockouts — as the group of region From froze it
// (State is fsm's encoding of it: token hashes and a password hash, never
// a token or a password). It replaces whatever the group held of the user.
type UserImported struct {
	UserID UserID `msgpack:"uid"`
	From   string `msgpack:"from"`
	Move   string `msgpack:"move"`
	State  []byte `msgpack:"state"`
}

// HomeMoved changes a user's home in the directory from From to To; a user
// whose home is not From is refused (the move is older than the home).
type HomeMoved struct {
	UserID UserID `msgpack:"uid"`
	From   string `msgpack:"from"`
	To     string `msgpack:"to"`
}

func (*UserFrozen) EventType() Type   { return TypeUserFrozen }
func (*UserImported) EventType() Type { return TypeUserImported }
func (*HomeMoved) EventType() Type    { return TypeHomeMoved }
