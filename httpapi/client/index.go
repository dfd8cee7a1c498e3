package client

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Index is a position in one Raft group's log, as X-Sessiond-Index carries
// it (docs/api.md#consistency). In a single-region cluster there is one
// group, Group "", and an index reads as a plain number ("1234"); in a
// cluster with regions every region has its own group, plus "global", and
// an index names its group ("eu:1234"). Numbers of different groups are
// not comparable.
type Index struct {
	// Group is the group's name; "" for a plain number.
	Group string
	// N is the position in that group's log.
	N uint64
}

// String is the index as the headers carry it: "1234" or "eu:1234".
func (i Index) String() string {
	if i.Group == "" {
		return strconv.FormatUint(i.N, 10)
	}
	return i.Group + ":" + strconv.FormatUint(i.N, 10)
}

// Indexes is a list of indexes, at most one per group, as
// X-Sessiond-Min-Index and ?min_index= take it.
type Indexes []Index

// String is the list comma-separated ("eu:1234,us:99,global:17"), in its
// order; "" for an empty list.
func (l Indexes) String() string {
	var b strings.Builder
	for i, x := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x.String())
	}
	return b.String()
}

// ErrBadIndex is the error of ParseIndexes.
var ErrBadIndex = errors.New("client: an index is a non-negative integer, or group:integer in a cluster with regions")

// maxGroupName bounds a group name (the server's limit is 64 bytes).
const maxGroupName = 64

// ParseIndexes reads one index or a comma-separated list ("1234",
// "eu:1234,us:99,global:17"), as String writes it; spaces around an entry
// are ignored. A group name is 1–64 characters of [A-Za-z0-9._-]; a group
// named twice is an error. The errors match ErrBadIndex.
func ParseIndexes(s string) (Indexes, error) {
	var out Indexes
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		i, err := parseIndex(part)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(x Index) bool { return x.Group == i.Group }) {
			return nil, fmt.Errorf("%w: %q names group %q twice", ErrBadIndex, s, i.Group)
		}
		out = append(out, i)
	}
	return out, nil
}

// parseIndex reads one index.
func parseIndex(s string) (Index, error) {
	group, num, qualified := strings.Cut(s, ":")
	if !qualified {
		group, num = "", s
	} else if !validGroup(group) {
		return Index{}, fmt.Errorf("%w: bad group in %q", ErrBadIndex, s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return Index{}, fmt.Errorf("%w: %q", ErrBadIndex, s)
	}
	return Index{Group: group, N: n}, nil
}

// validGroup accepts the group names a server writes (lower-case letters,
// digits, '-' and '.'), and some more; never a character that could not be
// sent back in a header or would change how the list reads.
func validGroup(g string) bool {
	if g == "" || len(g) > maxGroupName {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// indexBook remembers the highest index seen in each group, and the
// X-Sessiond-Min-Index value that names them.
//
// A plain number (group "") is what a single-region cluster gives, and the
// only index it takes. A cluster with regions names the group of every
// index and refuses a plain number (400), so once a named index is known
// the plain one is kept (LastIndex) but no longer sent: a plain index
// seeded by WithMinIndex, or one seen before the cluster gained regions,
// would otherwise fail every read.
type indexBook struct {
	mu      sync.Mutex
	byGroup map[string]uint64
	// sent is what reads send, sorted by group name; header is it
	// comma-separated ("" when nothing is known). A client that has seen
	// only plain numbers sends one plain number, as before there were
	// regions.
	sent   Indexes
	header string
}

// observe records i unless its group's index is already as high.
func (b *indexBook) observe(i Index) {
	if i.N == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.byGroup[i.Group]; ok && cur >= i.N {
		return
	}
	if b.byGroup == nil {
		b.byGroup = make(map[string]uint64, 1)
	}
	b.byGroup[i.Group] = i.N
	b.sent = make(Indexes, 0, len(b.byGroup))
	for g, n := range b.byGroup {
		if g != "" || len(b.byGroup) == 1 {
			b.sent = append(b.sent, Index{Group: g, N: n})
		}
	}
	slices.SortFunc(b.sent, func(x, y Index) int { return strings.Compare(x.Group, y.Group) })
	b.header = b.sent.String()
}

// minIndexHeader is the value of X-Sessiond-Min-Index ("" for none).
func (b *indexBook) minIndexHeader() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.header
}

// get is the index remembered for a group (0 when none).
func (b *indexBook) get(group string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byGroup[group]
}

// all is what reads send, sorted by group name.
func (b *indexBook) all() Indexes {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sent)
}

// observeHeader records the indexes of an X-Sessiond-Index value; a value
// that does not parse is ignored.
func (b *indexBook) observeHeader(v string) {
	if v == "" {
		return
	}
	list, err := ParseIndexes(v)
	if err != nil {
		return
	}
	for _, i := range list {
		b.observe(i)
	}
}
