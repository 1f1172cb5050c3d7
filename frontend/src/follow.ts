import { Merger } from "./merge";
import type { Envelope } from "./types";

/** One page of a room's history, as the gateway answers it. */
export interface HistoryPage {
  messages: Envelope[];
  last_seq: number;
}

/** FollowTransport reads a room's history; nats.ts backs it with NATS requests. */
export interface FollowTransport {
  history(afterSeq: number): Promise<HistoryPage>;
}

export interface FollowerOptions {
  transport: FollowTransport;
  /** Receives entries once each, in seq order. */
  deliver: (entries: Envelope[]) => void;
  /** Delivers entries after this seq (0: everything kept). */
  afterSeq?: number;
  /** Wait before reading the history again after a failed read. */
  retryMs?: number;
  /** Told about failed reads in the background (they are retried). */
  onError?: (err: unknown) => void;
}

/**
 * Follower follows one room as docs/protocol.md says: the caller subscribes
 * to chat.<room>.msgs first and hands every live entry to live(), then
 * start() reads the history page by page until the room's last seq; both
 * are merged by seq. A seq that jumps, or a reconnect (reconnected()),
 * makes it read the history after the last seq it delivered.
 */
export class Follower {
  private readonly merger: Merger<Envelope>;
  private readonly transport: FollowTransport;
  private readonly deliverFn: (entries: Envelope[]) => void;
  private readonly retryMs: number;
  private readonly onError: (err: unknown) => void;
  private running = false;
  private again = false;
  private stopped = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: FollowerOptions) {
    this.merger = new Merger(opts.afterSeq ?? 0);
    this.transport = opts.transport;
    this.deliverFn = opts.deliver;
    this.retryMs = opts.retryMs ?? 500;
    this.onError = opts.onError ?? (() => {});
  }

  /** The seq of the last entry delivered. */
  get delivered(): number {
    return this.merger.delivered;
  }

  /** Reads the history up to now; rejects when a read fails. */
  async start(): Promise<void> {
    this.running = true;
    try {
      await this.catchUp();
    } finally {
      this.running = false;
    }
    if (this.again || this.merger.gap) this.requestFetch();
  }

  /** Takes an entry broadcast live on chat.<room>.msgs. */
  live(e: Envelope): void {
    if (this.stopped) return;
    this.emit(this.merger.add(e));
    if (this.merger.gap) this.requestFetch();
  }

  /** After a reconnect, reads what was missed meanwhile. */
  reconnected(): void {
    this.requestFetch();
  }

  /** Reads the history when seq (say, of an acknowledged send) has not arrived. */
  expect(seq: number): void {
    if (seq > this.merger.delivered) this.requestFetch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private emit(entries: Envelope[]): void {
    if (entries.length > 0 && !this.stopped) this.deliverFn(entries);
  }

  /** Starts a background read, or asks the running one to read once more. */
  private requestFetch(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.fetchLoop();
  }

  private async fetchLoop(): Promise<void> {
    this.running = true;
    let retry = false;
    try {
      for (;;) {
        this.again = false;
        const before = this.merger.delivered;
        await this.catchUp();
        if (this.stopped) return;
        if (this.again) continue;
        // Entries still held back after a read that moved nothing: the
        // history has not caught up with the broadcast yet; look again soon.
        retry = this.merger.gap && this.merger.delivered === before;
        if (!this.merger.gap || retry) break;
      }
    } catch (err) {
      if (!this.stopped) {
        this.onError(err);
        // Reconnecting, say: try again; a reconnect also asks again.
        retry = true;
      }
    } finally {
      this.running = false;
    }
    if (retry && !this.stopped) {
      this.retryTimer = setTimeout(() => this.requestFetch(), this.retryMs);
    }
  }

  /** Reads the history after the last delivered seq until it has the room's last seq. */
  private async catchUp(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const after = this.merger.delivered;
      const page = await this.transport.history(after);
      if (this.stopped) return;
      const first = page.messages[0];
      if (first !== undefined && first.seq > after + 1) {
        // What is missing fell off the history cap: move past it.
        this.emit(this.merger.skipTo(first.seq));
      } else if (first === undefined && page.last_seq > after) {
        // Everything up to last_seq is gone (expired or purged).
        this.emit(this.merger.skipTo(page.last_seq + 1));
      }
      this.emit(this.merger.add(...page.messages));
      if (page.messages.length === 0 || this.merger.delivered >= page.last_seq) return;
      if (this.merger.delivered <= after) return; // no progress: never loop forever
    }
  }
}
