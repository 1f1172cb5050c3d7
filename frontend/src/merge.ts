/**
 * Merger puts a room's entries in seq order without gaps or duplicates,
 * whichever way they arrive: live broadcasts, history pages, resends. It is
 * the ordering rule every natter client follows (docs/protocol.md, and the
 * Go reference in client/merge.go).
 */
export class Merger<T extends { seq: number }> {
  private next: number;
  private pending = new Map<number, T>();

  /** Starts a merger that delivers entries after afterSeq. */
  constructor(afterSeq = 0) {
    this.next = afterSeq + 1;
  }

  /**
   * Takes entries in any order and returns those now deliverable, in seq
   * order. Entries already delivered or already pending are dropped.
   */
  add(...entries: T[]): T[] {
    for (const e of entries) {
      if (Number.isInteger(e.seq) && e.seq >= this.next && !this.pending.has(e.seq)) {
        this.pending.set(e.seq, e);
      }
    }
    const out: T[] = [];
    for (;;) {
      const e = this.pending.get(this.next);
      if (e === undefined) return out;
      this.pending.delete(this.next);
      out.push(e);
      this.next++;
    }
  }

  /** The seq of the last entry delivered. */
  get delivered(): number {
    return this.next - 1;
  }

  /**
   * Whether entries are held back for a missing seq: then the client reads
   * the history after `delivered`.
   */
  get gap(): boolean {
    return this.pending.size > 0;
  }

  /**
   * Moves past seqs that can no longer be had (dropped off the history cap)
   * and returns what that makes deliverable.
   */
  skipTo(seq: number): T[] {
    if (seq > this.next) {
      for (const s of this.pending.keys()) {
        if (s < seq) this.pending.delete(s);
      }
      this.next = seq;
    }
    return this.add();
  }
}
