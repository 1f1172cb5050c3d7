import { describe, expect, it, vi } from "vitest";

import { Follower, type HistoryPage } from "./follow";
import type { Envelope } from "./types";

function entry(seq: number): Envelope {
  return {
    room: "r",
    seq,
    type: "message",
    id: "m" + seq,
    from: { id: "U", name: "A" },
    text: "t" + seq,
    sig: "",
    sent_at: "2026-01-01T00:00:00Z",
  };
}

/**
 * FakeRoom is the gateway's history for the pure follow logic: entries
 * first..last, pages of at most pageSize, every call recorded.
 */
class FakeRoom {
  first = 1;
  last = 0;
  pageSize = 500;
  calls: number[] = [];
  failNext = 0;
  /** When set, a read waits for it before answering. */
  gate: Promise<void> | null = null;

  append(n: number): Envelope[] {
    const out: Envelope[] = [];
    for (let i = 0; i < n; i++) out.push(entry(++this.last));
    return out;
  }

  transport = {
    history: async (after: number): Promise<HistoryPage> => {
      this.calls.push(after);
      if (this.gate !== null) await this.gate;
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error("reconnecting");
      }
      const messages: Envelope[] = [];
      for (let s = Math.max(after + 1, this.first); s <= this.last && messages.length < this.pageSize; s++) {
        messages.push(entry(s));
      }
      return { messages, last_seq: this.last };
    },
  };
}

function follow(room: FakeRoom, afterSeq = 0) {
  const got: number[] = [];
  const f = new Follower({
    transport: room.transport,
    deliver: (es) => got.push(...es.map((e) => e.seq)),
    afterSeq,
    retryMs: 5,
  });
  return { f, got };
}

const inOrder = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("Follower", () => {
  it("reads the history page by page until the last seq", async () => {
    const room = new FakeRoom();
    room.append(7);
    room.pageSize = 3;
    const { f, got } = follow(room);
    await f.start();
    expect(got).toEqual(inOrder(1, 7));
    expect(room.calls).toEqual([0, 3, 6]);
  });

  it("merges live entries that come while the history is read, once each", async () => {
    const room = new FakeRoom();
    room.append(3);
    let open!: () => void;
    room.gate = new Promise((r) => (open = r));
    const { f, got } = follow(room);
    const started = f.start();
    // Subscribed first: entries 4 and 5 arrive live before the history answers.
    for (const e of room.append(2)) f.live(e);
    f.live(entry(4)); // and a duplicate
    expect(got).toEqual([]);
    room.gate = null;
    open();
    await started;
    await vi.waitFor(() => expect(got).toEqual(inOrder(1, 5)));
  });

  it("reads the history after the last delivered seq when a seq jumps", async () => {
    const room = new FakeRoom();
    room.append(3);
    const { f, got } = follow(room);
    await f.start();
    room.calls = [];
    room.append(1); // 4 is stored, but its broadcast is lost
    const [five] = room.append(1);
    f.live(five!);
    await vi.waitFor(() => expect(got).toEqual(inOrder(1, 5)));
    expect(room.calls).toEqual([3]);
  });

  it("reads the history after the last delivered seq after a reconnect", async () => {
    const room = new FakeRoom();
    room.append(2);
    const { f, got } = follow(room);
    await f.start();
    room.calls = [];
    room.append(3); // broadcast while disconnected: never seen live
    f.reconnected();
    await vi.waitFor(() => expect(got).toEqual(inOrder(1, 5)));
    expect(room.calls).toEqual([2]);
    // Live copies of what the history already gave are dropped.
    for (let s = 3; s <= 5; s++) f.live(entry(s));
    expect(got).toEqual(inOrder(1, 5));
  });

  it("reads nothing for a live entry that is next in line", async () => {
    const room = new FakeRoom();
    const { f, got } = follow(room);
    await f.start();
    room.calls = [];
    for (const e of room.append(3)) f.live(e);
    expect(got).toEqual([1, 2, 3]);
    await new Promise((r) => setTimeout(r, 20));
    expect(room.calls).toEqual([]);
  });

  it("skips what fell off the history cap", async () => {
    const room = new FakeRoom();
    room.append(600);
    room.first = 101; // a cap of 500
    const { f, got } = follow(room);
    await f.start();
    expect(got).toEqual(inOrder(101, 600));
    expect(f.delivered).toBe(600);
  });

  it("skips the cap on a jump after being away", async () => {
    const room = new FakeRoom();
    room.append(5);
    const { f, got } = follow(room);
    await f.start();
    room.append(700);
    room.first = 206;
    const [next] = room.append(1);
    room.first++;
    f.live(next!);
    await vi.waitFor(() => expect(f.delivered).toBe(706));
    expect(got).toEqual([...inOrder(1, 5), ...inOrder(207, 706)]);
  });

  it("retries a failed read and then delivers what was missed", async () => {
    const room = new FakeRoom();
    room.append(1);
    const { f, got } = follow(room);
    await f.start();
    room.calls = [];
    room.append(2);
    room.failNext = 2;
    f.reconnected();
    await vi.waitFor(() => expect(got).toEqual(inOrder(1, 3)));
    expect(room.calls).toEqual([1, 1, 1]);
  });

  it("reads again when asked while a read is running", async () => {
    const room = new FakeRoom();
    room.append(1);
    const { f, got } = follow(room);
    await f.start();
    room.calls = [];
    let open!: () => void;
    room.gate = new Promise((r) => (open = r));
    f.reconnected();
    room.append(1);
    f.reconnected(); // a second reconnect while the first read waits
    room.gate = null;
    room.append(1);
    open();
    await vi.waitFor(() => expect(got).toEqual(inOrder(1, 3)));
    expect(room.calls.length).toBe(2);
  });

  it("reads when an acknowledged seq has not arrived", async () => {
    const room = new FakeRoom();
    const { f, got } = follow(room);
    await f.start();
    room.append(1);
    f.expect(1);
    await vi.waitFor(() => expect(got).toEqual([1]));
    room.calls = [];
    f.expect(1); // already here
    await new Promise((r) => setTimeout(r, 20));
    expect(room.calls).toEqual([]);
  });

  it("continues after a given seq", async () => {
    const room = new FakeRoom();
    room.append(10);
    const { f, got } = follow(room, 8);
    await f.start();
    expect(got).toEqual([9, 10]);
    expect(room.calls).toEqual([8]);
  });

  it("delivers nothing after stop", async () => {
    const room = new FakeRoom();
    const { f, got } = follow(room);
    await f.start();
    f.stop();
    f.live(entry(1));
    f.reconnected();
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([]);
  });
});
