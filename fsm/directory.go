package fsm

import (
	"slices"
	"strings"

	"github.com/sessiond/sessiond/events"
)

// The directory (docs/regions.md): each user's home region, and which user holds
// each email address, so that addresses stay unique across regions. Only
// the global group's state machine fills it (events.UserHomed and
// events.EmailClaimed); a region group's stays empty, and so do its
// snapshots' directory sections, which are then left out (snapshot.go).
//
// The directory's addresses are not User.Email, the address of a user's
// built-in credentials in its home region's group: the two are kept by
// different groups and never consulted together here.
type directory struct {
	homes  map[events.UserID]string // user → home region
	owners map[string]events.UserID // email → the user holding it
	emails map[events.UserID]string // user → the email it holds; owners reversed
	// regions interns region names: a handful of them are shared by every
	// user, and each event decodes its own copy.
	regions map[string]string
	// importRegion is the region whose users a DirectoryImported lists
	// (a single-region cluster turned into regions), "" when none began;
	// importDone is set by the import's last batch.
	importRegion string
	importDone   bool
}

func newDirectory() directory {
	return directory{
		homes:   make(map[events.UserID]string),
		owners:  make(map[string]events.UserID),
		emails:  make(map[events.UserID]string),
		regions: make(map[string]string),
	}
}

// empty reports whether the directory holds nothing.
func (d *directory) empty() bool {
	return len(d.homes) == 0 && len(d.owners) == 0 && d.importRegion == "" && !d.importDone
}

// setHome records a user's home region; the caller checked that it has
// none.
func (d *directory) setHome(user events.UserID, region string) {
	if r, ok := d.regions[region]; ok {
		region = r
	} else {
		d.regions[region] = region
	}
	d.homes[user] = region
}

// claim gives email to user, releasing the email the user held; the caller
// checked that no other user holds it.
func (d *directory) claim(user events.UserID, email string) {
	if held, ok := d.emails[user]; ok {
		delete(d.owners, held)
	}
	d.owners[email] = user
	d.emails[user] = email
}

// release frees the email user holds, if any, and reports whether it held
// one.
func (d *directory) release(user events.UserID) bool {
	held, ok := d.emails[user]
	if ok {
		delete(d.owners, held)
		delete(d.emails, user)
	}
	return ok
}

// validEmail is the rule an event's email follows, in UserCredentialsSet
// and EmailClaimed alike: lower-cased ("" is valid where it means none).
func validEmail(email string) bool { return email == strings.ToLower(email) }

// homeUser applies UserHomed. The first home holds: a user that has one
// keeps it and the event changes nothing. Count is 1 when the event set the
// home, 0 when the user had one; either way Home then gives the home in
// force.
func (st *state) homeUser(ev *events.UserHomed) *Result {
	if ev.UserID == "" || !events.ValidRegion(ev.Region) {
		return failed(ErrInvalid)
	}
	if _, ok := st.dir.homes[ev.UserID]; ok {
		return &Result{}
	}
	st.dir.setHome(ev.UserID, ev.Region)
	return &Result{Count: 1}
}

// claimEmail applies EmailClaimed: ErrEmailInUse, with nothing changed, when
// another user holds the address. Count is 1 when the directory changed, 0
// when the user already held the address (or, releasing, held none).
func (st *state) claimEmail(ev *events.EmailClaimed) *Result {
	if ev.UserID == "" || !validEmail(ev.Email) {
		return failed(ErrInvalid)
	}
	if ev.Email == "" {
		if st.dir.release(ev.UserID) {
			return &Result{Count: 1}
		}
		return &Result{}
	}
	if owner, taken := st.dir.owners[ev.Email]; taken {
		if owner != ev.UserID {
			return failed(ErrEmailInUse)
		}
		return &Result{}
	}
	st.dir.claim(ev.UserID, ev.Email)
	return &Result{Count: 1}
}

// importDirectory applies DirectoryImported: each listed user is homed in
// the import's region unless it has a home, and its email claimed unless
// another user holds one or it holds another already. The first batch
// starts the import and sets the policy it carries; every batch must name
// the same region; the batch with Done ends it, and after that nothing
// changes. Count is the number of users homed.
func (st *state) importDirectory(ev *events.DirectoryImported) *Result {
	if !events.ValidRegion(ev.Region) || (st.dir.importRegion != "" && ev.Region != st.dir.importRegion) {
		return failed(ErrInvalid)
	}
	for _, u := range ev.Users {
		if u.UserID == "" || !validEmail(u.Email) {
			return failed(ErrInvalid)
		}
	}
	if ev.Policy != nil && st.dir.importRegion == "" {
		if err := ev.Policy.Validate(); err != nil {
			return failed(ErrInvalid)
		}
	}
	if st.dir.importDone {
		return &Result{}
	}
	if st.dir.importRegion == "" {
		st.dir.importRegion = ev.Region
		if ev.Policy != nil {
			st.setPolicy(&events.PolicySet{Policy: *ev.Policy})
		}
	}
	homed := 0
	for _, u := range ev.Users {
		if _, ok := st.dir.homes[u.UserID]; !ok {
			st.dir.setHome(u.UserID, ev.Region)
			homed++
		}
		if u.Email == "" {
			continue
		}
		if _, taken := st.dir.owners[u.Email]; taken {
			continue
		}
		if _, holds := st.dir.emails[u.UserID]; holds {
			continue
		}
		st.dir.claim(u.UserID, u.Email)
	}
	if ev.Done {
		st.dir.importDone = true
	}
	return &Result{Count: homed}
}

// Import is the state of a directory import: the region a single-region
// cluster's users are being listed from ("" when none began), and whether
// it is done.
func (f *FSM) Import() (region string, done bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.dir.importRegion, f.st.dir.importDone
}

// ImportCandidates lists, sorted by id, every user this state knows — with
// credentials or an own limit, or with a stored session — and the email of
// its credentials: what a DirectoryImported of this state's region lists.
func (f *FSM) ImportCandidates() []events.ImportedUser {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]events.ImportedUser, 0, len(f.st.users)+len(f.st.byUser))
	for id, u := range f.st.users {
		out = append(out, events.ImportedUser{UserID: id, Email: u.Email})
	}
	for id := range f.st.byUser {
		if _, ok := f.st.users[id]; !ok {
			out = append(out, events.ImportedUser{UserID: id})
		}
	}
	slices.SortFunc(out, func(a, b events.ImportedUser) int { return strings.Compare(string(a.UserID), string(b.UserID)) })
	return out
}

// KnowsUser reports whether this state holds anything of a user: built-in
// credentials, an own limit, or a stored session.
func (f *FSM) KnowsUser(user events.UserID) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if _, ok := f.st.users[user]; ok {
		return true
	}
	_, ok := f.st.byUser[user]
	return ok
}

// Home is a user's home region in the directory, if it has one.
func (f *FSM) Home(user events.UserID) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	region, ok := f.st.dir.homes[user]
	return region, ok
}

// EmailOwner is the user holding a (lower-cased) email address in the
// directory, if any.
func (f *FSM) EmailOwner(email string) (events.UserID, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	user, ok := f.st.dir.owners[email]
	return user, ok
}

// UserEmail is the email address a user holds in the directory, if any (not
// its credentials' address: see User).
func (f *FSM) UserEmail(user events.UserID) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	email, ok := f.st.dir.emails[user]
	return email, ok
}

// DirectorySize counts the users with a home and the addresses held.
func (f *FSM) DirectorySize() (homes, emails int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.dir.homes), len(f.st.dir.owners)
}
