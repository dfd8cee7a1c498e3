package fsm

// dedupCapacity is how many recent request ids the FSM remembers. It is part
// of the replicated behaviour: every node must use the same number.
const dedupCapacity = 16384

// dedupEntry is the remembered outcome of one applied write.
type dedupEntry struct {
	RequestID string
	Index     uint64
	Code      errCode
	Count     uint32
}

// dedupTable remembers the outcomes of the most recent writes by request id,
// oldest first out, so that a write retried after an unknown outcome (a
// timeout, a lost leader) returns its first outcome instead of applying
// twice. Its order is deterministic and it is kept in snapshots.
type dedupTable struct {
	capacity int
	ring     []dedupEntry // oldest at position start once full
	start    int
	byID     map[string]int // request id → position in ring
}

func newDedupTable(capacity int) *dedupTable {
	return &dedupTable{capacity: capacity, byID: make(map[string]int, capacity)}
}

func (d *dedupTable) lookup(requestID string) (dedupEntry, bool) {
	if requestID == "" {
		return dedupEntry{}, false
	}
	i, ok := d.byID[requestID]
	if !ok {
		return dedupEntry{}, false
	}
	return d.ring[i], true
}

func (d *dedupTable) remember(e dedupEntry) {
	if e.RequestID == "" {
		return
	}
	if len(d.ring) < d.capacity {
		d.byID[e.RequestID] = len(d.ring)
		d.ring = append(d.ring, e)
		return
	}
	delete(d.byID, d.ring[d.start].RequestID)
	d.ring[d.start] = e
	d.byID[e.RequestID] = d.start
	d.start = (d.start + 1) % d.capacity
}

// inOrder returns the entries oldest first.
func (d *dedupTable) inOrder() []dedupEntry {
	out := make([]dedupEntry, 0, len(d.ring))
	out = append(out, d.ring[d.start:]...)
	return append(out, d.ring[:d.start]...)
}
