import { describe, expect, it } from "vitest";

import { Merger } from "./merge";

const e = (...seqs: number[]) => seqs.map((seq) => ({ seq }));
const seqs = (es: { seq: number }[]) => es.map((x) => x.seq);

// The same cases as the Go reference (client/merge_test.go), and more.
describe("Merger", () => {
  const cases: { name: string; after: number; batches: number[][]; want: number[]; gap: boolean }[] = [
    { name: "in order", after: 0, batches: [[1, 2, 3]], want: [1, 2, 3], gap: false },
    { name: "live before history", after: 0, batches: [[4, 5], [1, 2, 3]], want: [1, 2, 3, 4, 5], gap: false },
    { name: "duplicates dropped", after: 0, batches: [[1, 2], [2, 3], [1, 3]], want: [1, 2, 3], gap: false },
    { name: "duplicates while pending", after: 0, batches: [[3, 3], [3], [1, 2]], want: [1, 2, 3], gap: false },
    { name: "gap held back", after: 0, batches: [[1, 3, 4]], want: [1], gap: true },
    { name: "gap filled by history", after: 0, batches: [[1, 3, 4], [2]], want: [1, 2, 3, 4], gap: false },
    { name: "after a seq", after: 10, batches: [[9, 10, 11, 12]], want: [11, 12], gap: false },
    { name: "reversed", after: 0, batches: [[3], [2], [1]], want: [1, 2, 3], gap: false },
    { name: "out of order in one batch", after: 0, batches: [[5, 1, 4, 2, 3]], want: [1, 2, 3, 4, 5], gap: false },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const m = new Merger(tc.after);
      const got: number[] = [];
      for (const b of tc.batches) got.push(...seqs(m.add(...e(...b))));
      expect(got).toEqual(tc.want);
      expect(m.gap).toBe(tc.gap);
      expect(m.delivered).toBe(tc.want.length > 0 ? tc.want[tc.want.length - 1] : tc.after);
    });
  }

  it("keeps the first copy of a seq", () => {
    const m = new Merger<{ seq: number; v: string }>();
    m.add({ seq: 2, v: "first" });
    m.add({ seq: 2, v: "second" });
    expect(m.add({ seq: 1, v: "one" }).map((x) => x.v)).toEqual(["one", "first"]);
  });

  it("skips past what fell off the history cap", () => {
    const m = new Merger();
    m.add(...e(1));
    m.add(...e(600, 601));
    expect(m.gap).toBe(true);
    expect(seqs(m.skipTo(600))).toEqual([600, 601]);
    expect(m.delivered).toBe(601);
    expect(m.gap).toBe(false);
  });

  it("drops held-back entries below the skip target", () => {
    const m = new Merger();
    m.add(...e(3, 7));
    expect(seqs(m.skipTo(6))).toEqual([]);
    expect(m.delivered).toBe(5);
    expect(seqs(m.add(...e(6)))).toEqual([6, 7]);
  });

  it("never moves back", () => {
    const m = new Merger(10);
    expect(seqs(m.skipTo(3))).toEqual([]);
    expect(m.delivered).toBe(10);
  });
});
