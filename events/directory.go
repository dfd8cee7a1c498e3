package events

// The directory events (docs/regions.md). Only the global group of a multi-region
// deployment receives them, besides PolicySet; region groups never do. The
// directory they build maps each user to its home region and each email
// address to the one user holding it, so that addresses stay unique across
// regions.

// UserHomed sets a user's home region, unless the user has one already: the
// first home written holds, and a later UserHomed for the same user changes
// nothing (moving a home is another event). Region is a region's name, as
// ValidRegion checks it.
type UserHomed struct {
	UserID UserID `msgpack:"uid"`
	Region string `msgpack:"region"`
}

// EmailClaimed makes Email the user's address in the directory and releases
// the address the user held before, if any; an empty Email only releases it.
// Email is lower-cased, as in UserCredentialsSet. An address another user
// holds is refused and nothing changes.
type EmailClaimed struct {
	UserID UserID `msgpack:"uid"`
	Email  string `msgpack:"email"`
}

// DirectoryImported lists, in the directory, users whose state a
// single-region cluster held before it was turned into regions: its one
// group became the group of Region, and the global group learns from it
// who lives there. The import comes in batches; the first one starts it
// (and carries the region's policy, which becomes the global policy), the
// one with Done ends it. Each user is homed in Region unless it has a home
// already, and its email claimed unless another user holds it. Once the
// import is done, a later DirectoryImported changes nothing.
type DirectoryImported struct {
	Region string         `msgpack:"region"`
	Users  []ImportedUser `msgpack:"users"`
	Policy *Policy        `msgpack:"policy,omitempty"`
	Done   bool           `msgpack:"done"`
}

// ImportedUser is one user of a DirectoryImported: its id and, when it has
// built-in credentials with one, its (lower-cased) email.
type ImportedUser struct {
	UserID UserID `msgpack:"uid"`
	Email  string `msgpack:"email,omitempty"`
}

func (*UserHomed) EventType() Type         { return TypeUserHomed }
func (*EmailClaimed) EventType() Type      { return TypeEmailClaimed }
func (*DirectoryImported) EventType() Type { return TypeDirectoryImported }

// maxRegionLen bounds a region's name.
const maxRegionLen = 64

// ValidRegion reports whether name can name a region: 1 to 64
// bytes of lower-case letters, digits, '-' and '.'. (The rule of a Raft
// group's name, which a region's group takes.)
func ValidRegion(name string) bool {
	if name == "" || len(name) > maxRegionLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
