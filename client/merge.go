package client

import "github.com/natterchat/natter"

// Merger puts a room's entries in seq order without gaps or duplicates,
// whichever way they arrive: live broadcasts, history pages, resends. It
// is the ordering rule every natter client follows (docs/protocol.md).
type Merger struct {
	next    uint64 // the seq to deliver next
	pending map[uint64]natter.Envelope
}

// NewMerger starts a merger that delivers entries after afterSeq.
func NewMerger(afterSeq uint64) *Merger {
	return &Merger{next: afterSeq + 1, pending: map[uint64]natter.Envelope{}}
}

// Add takes entries in any order and returns those now deliverable, in seq
// order. Entries already delivered or already pending are dropped.
func (m *Merger) Add(entries ...natter.Envelope) []natter.Envelope {
	for _, e := range entries {
		if e.Seq >= m.next {
			m.pending[e.Seq] = e
		}
	}
	var out []natter.Envelope
	for {
		e, ok := m.pending[m.next]
		if !ok {
			return out
		}
		delete(m.pending, m.next)
		out = append(out, e)
		m.next++
	}
}

// Delivered is the seq of the last entry delivered.
func (m *Merger) Delivered() uint64 { return m.next - 1 }

// Gap reports whether entries are held back for a missing seq: then the
// client reads the history after Delivered().
func (m *Merger) Gap() bool { return len(m.pending) > 0 }

// SkipTo moves past seqs that can no longer be had (dropped off the
// history cap) and returns what that makes deliverable.
func (m *Merger) SkipTo(seq uint64) []natter.Envelope {
	if seq > m.next {
		for s := range m.pending {
			if s < seq {
				delete(m.pending, s)
			}
		}
		m.next = seq
	}
	return m.Add()
}
