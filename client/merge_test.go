package client

import (
	"slices"
	"testing"

	"github.com/natterchat/natter"
)

func seqs(es []natter.Envelope) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func envs(ss ...uint64) []natter.Envelope {
	var out []natter.Envelope
	for _, s := range ss {
		out = append(out, natter.Envelope{Seq: s})
	}
	return out
}

func TestMerger(t *testing.T) {
	cases := []struct {
		name    string
		after   uint64
		batches [][]uint64
		want    []uint64
		gap     bool
	}{
		{"in order", 0, [][]uint64{{1, 2, 3}}, []uint64{1, 2, 3}, false},
		{"live before history", 0, [][]uint64{{4, 5}, {1, 2, 3}}, []uint64{1, 2, 3, 4, 5}, false},
		{"duplicates dropped", 0, [][]uint64{{1, 2}, {2, 3}, {1, 3}}, []uint64{1, 2, 3}, false},
		{"gap held back", 0, [][]uint64{{1, 3, 4}}, []uint64{1}, true},
		{"gap filled", 0, [][]uint64{{1, 3, 4}, {2}}, []uint64{1, 2, 3, 4}, false},
		{"after a seq", 10, [][]uint64{{9, 10, 11, 12}}, []uint64{11, 12}, false},
		{"reversed", 0, [][]uint64{{3}, {2}, {1}}, []uint64{1, 2, 3}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMerger(tc.after)
			var got []uint64
			for _, b := range tc.batches {
				got = append(got, seqs(m.Add(envs(b...)...))...)
			}
			if !slices.Equal(got, tc.want) || m.Gap() != tc.gap {
				t.Fatalf("delivered %v gap %v, want %v gap %v", got, m.Gap(), tc.want, tc.gap)
			}
		})
	}
}

func TestMergerSkipTo(t *testing.T) {
	m := NewMerger(0)
	m.Add(envs(1)...)
	m.Add(envs(600, 601)...)
	if got := seqs(m.SkipTo(600)); !slices.Equal(got, []uint64{600, 601}) || m.Delivered() != 601 || m.Gap() {
		t.Fatalf("got %v delivered %d", got, m.Delivered())
	}
}
