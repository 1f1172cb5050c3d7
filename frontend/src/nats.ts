// The session: identity, tokens, one NATS connection per open room, and
// following that room. With api.ts, the only module that reaches the
// network; components get its state and call its methods.
import { errors, jwtAuthenticator, wsconnect, type Msg, type NatsConnection } from "@nats-io/nats-core";

import { Account, accountProblem, SESSION_STORAGE_KEY, sessionEnded, type AccountState } from "./account";
import * as api from "./api";
import { backoff } from "./backoff";
import { Follower, type HistoryPage } from "./follow";
import { browserStore, loadIdentity, loadName, newIdentity, saveName, type Identity, type KeyValueStore } from "./identity";
import { decrypt, encrypt, exportRoomKey, roomKey, validSealedText } from "./sealed";
import { signImage, signMessage, verifyImage, verifyMessage } from "./sign";
import { codePoints, newMessageId } from "./text";
import { refreshDelay, retryDelay, tokenLifetime } from "./tokens";
import {
  MAX_NAME_CHARS,
  MAX_ROOM_NAME_CHARS,
  validRoomId,
  type Ack,
  type Envelope,
  type EntryType,
  type HistoryReply,
  type ImageInfo,
  type JoinReply,
  type Member,
  type MemberEvent,
  type Reply,
  type Room,
  type TokenResponse,
  type Upload,
} from "./types";

export type ConnState = "connecting" | "connected" | "reconnecting" | "offline";

/** An entry of the room as the view shows it. */
export interface ViewEntry {
  seq: number;
  type: EntryType;
  id: string;
  from: Member;
  text: string;
  sentAt: string;
  own: boolean;
  /** The signature verified with the sender's key (join and leave: true). */
  verified: boolean;
  /** An image message: the upload it shows (text is then its caption). */
  upload?: string;
  /** What the gateway read of the image: its type, size and dimensions. */
  image?: ImageInfo;
  /** A sealed message that did not decrypt (wrong key, tampered, another room's): text is empty. */
  undecryptable?: boolean;
}

/** An image of this user on its way: the file, how much of it has gone, and the upload once made. */
export interface LocalImage {
  name: string;
  size: number;
  /** The fraction of the upload sent, 0 to 1. */
  progress: number;
  upload: Upload | null;
}

/** A message of this user not yet in the room's history: sending, or refused. */
export interface LocalMessage {
  id: string;
  /** The text, or an image's caption. */
  text: string;
  sig: string;
  /** Uploading: an image's bytes are on their way to the TVM; sending: the message to the gateway. */
  status: "uploading" | "sending" | "failed";
  /** An image message. */
  image?: LocalImage;
  /** Sending waits for the connection to come back. */
  waiting?: boolean;
  error?: string;
  /** The code of the refusal (unsupported_type, too_large…), for tests and styling. */
  errorCode?: string;
  /** Whether sending it again may work (a timeout, say, not a refusal of the text). */
  retryable: boolean;
  /** A sealed room's message: the text encrypted, which is what goes out and is signed. */
  ct?: string;
}

export type RoomPhase = "loading" | "live" | "closed" | "unknown";

export interface RoomState {
  id: string;
  /** The room's name; empty until known. */
  name: string;
  phase: RoomPhase;
  /** Why the room is not open yet (a retry is under way), or why it closed. */
  problem: string | null;
  /** The name the room gave this user (made unique: "Ada (2)"). */
  myName: string | null;
  entries: ViewEntry[];
  local: LocalMessage[];
  members: Member[];
  /** Ids of the members typing now. */
  typing: string[];
  /** The last entry to announce to screen readers, numbered so a repeat is announced too. */
  announcement: { n: number; text: string };
  /** A sealed room (docs/sealed.md). */
  sealed: boolean;
  /** A sealed room opened without its key: nothing is joined, shown or sent. */
  locked: boolean;
}

export interface SessionState {
  me: Member | null;
  /** Why signing in has not worked yet (it is retried). */
  signInProblem: string | null;
  conn: ConnState;
  rooms: Room[] | null;
  roomsProblem: string | null;
  room: RoomState | null;
  /** The registered account signed in, if any. */
  account: AccountState;
}

/** How many entries the view keeps; older ones stay in the room's history. */
const MAX_VIEW_ENTRIES = 2000;
const HEARTBEAT_MS = 20_000;
const TYPING_SEND_MS = 2_000;
const TYPING_SHOW_MS = 4_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** After this long reconnecting, the state shows offline (still retrying). */
const OFFLINE_AFTER_MS = 8_000;
/** A reconnect shorter than this is not shown at all. */
const SHOW_RECONNECTING_AFTER_MS = 2_000;

const encoder = new TextEncoder();

function userSubject(room: string, op: string, user: string): string {
  return `chat.${room}.${op}.${user}`;
}

/** Session is one person's natter: who they are, the lobby and the open room. */
export class Session {
  private state: SessionState;
  private readonly listeners = new Set<() => void>();
  /** The user's key pair: a new one after signing out (see signedOut). */
  identity: Identity;
  private readonly store: KeyValueStore | null;
  private baseToken: { tok: TokenResponse; expiresAt: number } | null = null;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private room: RoomConnection | null = null;
  private lobbyConn: ConnState = "connecting";
  private started = false;
  /** The registered account, when signed in; tokens are then asked for with its session. */
  readonly account: Account;
  /** Token changes after signing in or out, one at a time. */
  private accountChain: Promise<void> = Promise.resolve();
  /** The id of the account signed in, to tell signing out from a change of name. */
  private accountId: string | null = null;

  constructor(store: KeyValueStore | null = browserStore()) {
    this.store = store;
    this.identity = loadIdentity(store);
    this.account = new Account(store);
    const profile = this.account.getState().profile;
    const name = profile?.display_name ?? loadName(store);
    this.state = {
      me: name === null ? null : { id: this.identity.id, name },
      signInProblem: null,
      conn: "connecting",
      rooms: null,
      roomsProblem: null,
      room: null,
      account: this.account.getState(),
    };
    this.readyPromise = new Promise((resolve) => (this.resolveReady = resolve));
    this.accountId = profile?.id ?? null;
    this.account.subscribe((identityChanged) => {
      const now = this.account.getState().profile?.id ?? null;
      const out = this.accountId !== null && now !== this.accountId;
      this.accountId = now;
      this.set({ account: this.account.getState() });
      if (out) this.signedOut();
      if (identityChanged) this.accountChanged();
    });
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getState = (): SessionState => this.state;

  private set(patch: Partial<SessionState>): void {
    this.state = { ...this.state, ...patch };
    this.state.conn = this.room !== null && this.room.active ? this.room.conn : this.lobbyConn;
    for (const l of this.listeners) l();
  }

  /** updateRoom changes the open room's state, if conn is still the open room. */
  updateRoom(conn: RoomConnection, fn: (r: RoomState) => RoomState): void {
    if (conn !== this.room || this.state.room === null) return;
    this.set({ room: fn(this.state.room) });
  }

  /** Called by the open room when its connection state changes. */
  connChanged(): void {
    this.set({});
  }

  private setLobbyConn(c: ConnState): void {
    this.lobbyConn = typeof navigator !== "undefined" && navigator.onLine === false ? "offline" : c;
    this.set({});
  }

  /** start signs in: gets a first token, which names the user when they have no name yet. */
  start(): void {
    if (this.started) return;
    this.started = true;
    window.addEventListener("online", () => this.setLobbyConn(this.lobbyConn === "offline" ? "connecting" : this.lobbyConn));
    window.addEventListener("offline", () => this.setLobbyConn("offline"));
    // No leave when the page goes away: a reload would write a leave and a
    // join line into everyone's history. A page really gone stops sending
    // heartbeats and its presence runs out within the presence TTL; a reload
    // joins again before that, silently.
    window.addEventListener("pageshow", (e) => {
      if (e.persisted) this.room?.pageShown();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "visible") return;
      this.account.pageVisible();
      this.room?.pageVisible();
    });
    // The full link of a sealed room pasted over a link without its key.
    window.addEventListener("hashchange", () => {
      const room = this.room;
      if (room === null || this.state.room?.locked !== true) return;
      room.stop(false);
      this.room = null;
      this.openRoom(room.id);
    });
    // Signing in or out in another tab signs this one in or out too.
    window.addEventListener("storage", (e) => {
      if (e.key === SESSION_STORAGE_KEY || e.key === null) this.account.adoptStored();
    });
    this.account.start();
    void this.signIn();
  }

  private async signIn(): Promise<void> {
    let name = loadName(this.store);
    for (let attempt = 0; ; attempt++) {
      try {
        const tok = await this.requestToken([], name);
        this.acceptBaseToken(tok);
        this.setLobbyConn("connected");
        this.set({ signInProblem: null });
        this.resolveReady();
        return;
      } catch (err) {
        if (err instanceof api.ApiError && (err.code === "invalid_name" || err.code === "name_taken") && name !== null) {
          // A name kept from before that is no longer allowed, or that
          // someone has registered since: get a new one.
          name = null;
          continue;
        }
        this.setLobbyConn(isNetworkError(err) ? "offline" : "connecting");
        this.set({ signInProblem: problemText(err) });
        await sleep(retryDelay(attempt, 0));
      }
    }
  }

  private acceptBaseToken(tok: TokenResponse, registered = this.account.getState().profile !== null): void {
    this.baseToken = { tok, expiresAt: Date.now() + tokenLifetime(tok) };
    // Only the anonymous name is kept: it is the one to go back to after
    // logging out (a registered name would be refused to an anonymous user).
    if (!registered) saveName(this.store, tok.user.name);
    this.set({ me: { id: this.identity.id, name: tok.user.name } });
  }

  /**
   * requestToken asks for a token for rooms: with the session when signed
   * in (the token then carries the account and its display name), else
   * anonymously under name (by default the name kept from before). A
   * session the TVM no longer takes signs the account out, and the token is
   * asked for anonymously.
   */
  async requestToken(rooms: string[], name: string | null = loadName(this.store)): Promise<TokenResponse> {
    const session = await this.account.bearer();
    if (session === null) return api.token(this.identity.id, name, rooms);
    try {
      return await api.token(this.identity.id, null, rooms, session);
    } catch (err) {
      if (!sessionEnded(err)) throw err;
      this.account.drop("Your session has ended. Sign in again to use your registered name.");
      return api.token(this.identity.id, name, rooms);
    }
  }

  /**
   * signedOut gives the person a new key pair. The TVM binds a key to the
   * account its token was vended to, and the gateway joins that key under
   * the account's name for the token's whole life: with the same key, an
   * anonymous person after logging out (on a shared computer, another
   * person) would still chat under the registered name and its mark. The
   * open room is left under the old key and entered again with the new one.
   */
  private signedOut(): void {
    const room = this.room;
    const roomName = this.state.room?.name ?? "";
    room?.stop(true);
    this.room = null;
    this.identity = newIdentity(this.store);
    this.baseToken = null;
    this.set({ me: { id: this.identity.id, name: loadName(this.store) ?? "" }, room: null });
    if (room !== null) {
      this.openRoom(room.id);
      if (roomName !== "") this.updateRoom(this.room!, (r) => ({ ...r, name: r.name || roomName }));
    }
  }

  /**
   * accountChanged follows signing in or out, or a new display name: a new
   * sign-in token, and in a room, a token for it and a join under the name.
   */
  private accountChanged(): void {
    this.accountChain = this.accountChain.then(async () => {
      await this.readyPromise;
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          this.acceptBaseToken(await this.requestToken([]));
          break;
        } catch (err) {
          if (err instanceof api.ApiError && (err.code === "name_taken" || err.code === "invalid_name")) {
            // Back to anonymous under a name someone has registered meanwhile.
            this.acceptBaseToken(await this.requestToken([], null));
            break;
          }
          await sleep(retryDelay(attempt, 0));
        }
      }
      // Should rejoining fail now, the next join (a heartbeat's, a
      // reconnect's) carries the new identity.
      await this.room?.rename().catch(() => {});
    }).catch(() => {
      // Nothing left to do: the next renewal asks again.
    });
  }

  /** The user's display name, once signed in. */
  private async myName(): Promise<string> {
    await this.readyPromise;
    return this.state.me!.name;
  }

  /** A token to create rooms with: the sign-in token while it has some life left. */
  private async bearer(): Promise<string> {
    await this.readyPromise;
    if (this.baseToken === null || this.baseToken.expiresAt - Date.now() < 3_000) {
      this.acceptBaseToken(await this.requestToken([], await this.myName()));
    }
    return this.baseToken!.tok.jwt;
  }

  /** refreshRooms reads the open rooms for the lobby. */
  async refreshRooms(): Promise<void> {
    try {
      const rooms = await api.listRooms();
      if (this.baseToken !== null) this.setLobbyConn("connected");
      this.set({ rooms, roomsProblem: null });
    } catch (err) {
      if (isNetworkError(err)) this.setLobbyConn("offline");
      this.set({ roomsProblem: problemText(err) });
    }
  }

  /** createRoom creates a room and returns its id, or throws an Error with a message for people. */
  async createRoom(name: string, sealed = false): Promise<string> {
    const trimmed = name.trim();
    if (codePoints(trimmed) > MAX_ROOM_NAME_CHARS) {
      throw new Error(`Room names have at most ${MAX_ROOM_NAME_CHARS} characters.`);
    }
    if (/[<>]/.test(trimmed)) throw new Error("Room names cannot contain < or >.");
    try {
      const room = await api.createRoom(await this.bearer(), trimmed, sealed);
      this.set({ rooms: [room, ...(this.state.rooms ?? []).filter((r) => r.id !== room.id)] });
      return room.id;
    } catch (err) {
      if (err instanceof api.ApiError && err.code === "room_limit") {
        throw new Error("You have created as many rooms as allowed this hour. Join an open room, or try again later.");
      }
      throw new Error(problemText(err));
    }
  }

  /** rename changes the display name; in a room it rejoins under the new name. */
  async rename(name: string): Promise<void> {
    const trimmed = name.trim();
    if (trimmed === "") throw new Error("Your name cannot be empty.");
    if (codePoints(trimmed) > MAX_NAME_CHARS) throw new Error(`Names have at most ${MAX_NAME_CHARS} characters.`);
    await this.readyPromise;
    if (trimmed === this.state.me?.name) return;
    if (this.account.getState().profile !== null) {
      // A registered name is the account's: change it there; the new
      // token and the rejoin follow from the account's change.
      try {
        await this.account.rename(trimmed);
      } catch (err) {
        throw new Error(accountProblem(err, "name").message);
      }
      await this.accountChain;
      return;
    }
    try {
      this.acceptBaseToken(await api.token(this.identity.id, trimmed, []));
    } catch (err) {
      if (err instanceof api.ApiError && err.code === "name_taken") {
        throw new Error("Someone has registered that name. Choose another, or sign in if it is yours.");
      }
      throw new Error(problemText(err));
    }
    // The name is taken; should rejoining the room fail now, the next
    // join (a heartbeat's, a reconnect's) carries it.
    await this.room?.rename().catch(() => {});
  }

  /** openRoom leaves the open room, if another, and enters room id. */
  openRoom(id: string): void {
    if (this.room !== null && this.room.id === id) return;
    this.room?.stop(true);
    const name = this.state.rooms?.find((r) => r.id === id)?.name ?? "";
    const conn = new RoomConnection(this, id);
    this.room = conn;
    this.set({ room: emptyRoom(id, name, validRoomId(id) ? "loading" : "unknown") });
    if (validRoomId(id)) void conn.open();
  }

  /**
   * roomLink is the link to share of the open room: with its key in the
   * fragment when it is sealed, so that the link alone lets people in.
   */
  async roomLink(origin: string, path: string): Promise<string> {
    const key = this.room?.key ?? null;
    return key === null ? origin + path : `${origin}${path}#k=${await exportRoomKey(key)}`;
  }

  /** closeRoom leaves the open room. */
  closeRoom(): void {
    this.room?.stop(true);
    this.room = null;
    this.set({ room: null });
  }

  send(text: string): void {
    this.room?.send(text);
  }

  /** sendImage uploads file to the open room, then sends it as an image message with caption. */
  sendImage(file: File, caption: string): void {
    this.room?.sendImage(file, caption);
  }

  /** loadImage reads an image of the open room with its token. */
  loadImage(uploadId: string, signal?: AbortSignal): Promise<Blob> {
    if (this.room === null) return Promise.reject(new Error("Not in a room."));
    return this.room.loadImage(uploadId, signal);
  }

  /** imageLink gets a signed link (10 minutes) to an image of the open room. */
  async imageLink(uploadId: string): Promise<string> {
    if (this.room === null) throw new Error("Not in a room.");
    return this.room.imageLink(uploadId);
  }

  retry(localId: string): void {
    this.room?.retry(localId);
  }

  dismiss(localId: string): void {
    this.room?.dismiss(localId);
  }

  typing(): void {
    this.room?.typing();
  }

  /** For RoomConnection: the user's name and key. */
  async roomIdentity(): Promise<{ id: string; name: string; identity: Identity }> {
    return { id: this.identity.id, name: await this.myName(), identity: this.identity };
  }
}

function emptyRoom(id: string, name: string, phase: RoomPhase): RoomState {
  return {
    id,
    name,
    phase,
    problem: null,
    myName: null,
    entries: [],
    local: [],
    members: [],
    typing: [],
    announcement: { n: 0, text: "" },
    sealed: false,
    locked: false,
  };
}

/** Thrown inside RoomConnection when the room is gone: stop trying. */
class RoomGone extends Error {
  readonly phase: "closed" | "unknown";
  constructor(phase: "closed" | "unknown", message: string) {
    super(message);
    this.phase = phase;
  }
}

/** roomGone turns the error codes that mean "this room is not open" into RoomGone. */
function roomGone(code: string | undefined, message: string): RoomGone | null {
  if (code === "room_closed") return new RoomGone("closed", message);
  if (code === "unknown_room" || code === "invalid_room") return new RoomGone("unknown", message);
  return null;
}

/**
 * RoomConnection is the user in one room: a token for exactly that room, a
 * NATS connection with it, presence, and the room followed in seq order.
 */
class RoomConnection {
  readonly id: string;
  private readonly session: Session;
  private nc: NatsConnection | null = null;
  private token: TokenResponse | null = null;
  private stopped = false;
  private historyLoaded = false;
  /** A sealed room's key, from the link's fragment or this tab's sessionStorage. */
  key: CryptoKey | null = null;
  private sealed = false;
  conn: ConnState = "connecting";
  private readonly follower: Follower;
  private verifyChain: Promise<void> = Promise.resolve();
  private me: { id: string; name: string; identity: Identity } | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private offlineTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectingTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reconnect attempts since the connection was last up, for backoff. */
  private reconnectAttempts = 0;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly typingUntil = new Map<string, number>();
  private lastTypingSent = 0;
  private announced = 0;
  /** Connections made so far: a send still unanswered across a reconnect goes out again. */
  private epoch = 0;
  /** When the next token renewal is due (timers of hidden pages run late). */
  private refreshDue = { at: 0, expiresAt: 0, attempt: 0 };
  /** Sends not answered yet, by message id: the latest attempt of each, and the connection it went out on. */
  private readonly inflight = new Map<string, { id: string; body: SendBody; epoch: number; attempt: object }>();
  /** The files of images being sent, by message id, kept until the message is in the history. */
  private readonly files = new Map<string, File>();
  /** Uploads under way, by message id, to call off when the message is removed. */
  private readonly uploads = new Map<string, api.UploadRequest>();
  /** Ids of sends acknowledged, whose entry has not arrived yet. */
  private readonly acked = new Set<string>();

  constructor(session: Session, id: string) {
    this.session = session;
    this.id = id;
    this.follower = new Follower({
      transport: { history: (after) => this.history(after) },
      deliver: (entries) => this.deliver(entries),
      onError: (err) => this.onBackgroundError(err),
    });
  }

  /** Whether this room still owns a connection (not closed, not stopped). */
  get active(): boolean {
    return !this.stopped;
  }

  private update(fn: (r: RoomState) => RoomState): void {
    this.session.updateRoom(this, fn);
  }

  private setConn(c: ConnState): void {
    if (c === "reconnecting" && this.conn === "connected" && !(typeof navigator !== "undefined" && navigator.onLine === false)) {
      // A token renewal ends the connection and the next one opens within
      // a second: show reconnecting only when it takes longer than that.
      this.reconnectingTimer ??= setTimeout(() => {
        this.reconnectingTimer = undefined;
        this.applyConn("reconnecting");
      }, SHOW_RECONNECTING_AFTER_MS);
      return;
    }
    clearTimeout(this.reconnectingTimer);
    this.reconnectingTimer = undefined;
    this.applyConn(c);
  }

  private applyConn(c: ConnState): void {
    if (c === "reconnecting") {
      if (typeof navigator !== "undefined" && navigator.onLine === false) c = "offline";
      // Offline stays offline through further attempts, until one works.
      if (this.conn === "offline") c = "offline";
      if (this.conn === "connected" || this.conn === "connecting") {
        clearTimeout(this.offlineTimer);
        this.offlineTimer = setTimeout(() => this.setConn("offline"), OFFLINE_AFTER_MS);
      }
    } else if (c !== "offline") {
      clearTimeout(this.offlineTimer);
    }
    if (c === this.conn) return;
    this.conn = c;
    this.session.connChanged();
  }

  /** connected counts a connection made or made again. */
  private connected(): void {
    this.epoch++;
    this.setConn("connected");
  }

  /**
   * resend sends again, with the same ids, what went out on an earlier
   * connection and was not answered: the request or its reply may have
   * been lost with that connection. The gateway stores an id once and
   * answers a repeat with the first ack, so nothing is stored twice.
   */
  private resend(): void {
    const stale = [...this.inflight.values()].filter((f) => f.epoch < this.epoch);
    if (stale.length === 0) return;
    const ids = new Set(stale.map((f) => f.id));
    this.update((r) => ({ ...r, local: r.local.map((l) => (ids.has(l.id) ? { ...l, waiting: false } : l)) }));
    for (const f of stale) void this.transmit(f.id, f.body);
  }

  /** open enters the room: its name, a token for it, a connection, join, history. */
  async open(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const room = await api.getRoom(this.id);
        this.sealed = room.sealed === true;
        if (this.sealed && this.key === null) this.key = await roomKey(this.id, window.location.hash);
        if (this.stopped) return;
        const locked = this.sealed && this.key === null;
        this.update((r) => ({ ...r, name: room.name, sealed: this.sealed, locked }));
        if (locked) {
          // Without the key there is nothing to read and nothing to send:
          // not even a join, which would show this person in the room.
          this.stop(false);
          return;
        }
        this.me = await this.session.roomIdentity();
        await this.connect();
        await this.follower.start();
        await this.verifyChain; // the history is on screen before the room shows as live
        if (this.stopped) return;
        this.historyLoaded = true;
        this.update((r) => ({ ...r, phase: "live", problem: null }));
        this.heartbeatTimer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
        return;
      } catch (err) {
        if (this.stopped) return;
        const gone = asGone(err);
        if (gone !== null) {
          this.gone(gone);
          return;
        }
        this.update((r) => ({ ...r, problem: problemText(err) }));
        this.setConn(isNetworkError(err) ? "offline" : "connecting");
        this.closeNats();
        await sleep(retryDelay(attempt, 0));
      }
    }
  }

  /** connect gets a token for the room, connects with it and joins. */
  private async connect(): Promise<void> {
    const me = this.me!;
    this.setToken(await this.fetchToken());
    const seed = me.identity.seed;
    const tok = this.token!;
    const nc = await wsconnect({
      servers: tok.servers,
      inboxPrefix: tok.inbox_prefix,
      // nats.js asks on every (re)connect, synchronously: hand it the newest token.
      authenticator: jwtAuthenticator(
        () => this.token!.jwt,
        () => encoder.encode(seed),
      ),
      name: "natter-web",
      maxReconnectAttempts: -1,
      // 1–2 s at first, then doubling after each failed attempt.
      reconnectDelayHandler: () => backoff(++this.reconnectAttempts, 1_000, 1_000),
      timeout: REQUEST_TIMEOUT_MS,
      pingInterval: 30_000,
    });
    if (this.stopped) {
      void nc.close().catch(() => {});
      return;
    }
    this.nc = nc;
    nc.subscribe(`chat.${this.id}.msgs`, { callback: (err, m) => void (err === null && this.onEntry(m)) });
    nc.subscribe(`chat.${this.id}.members`, { callback: (err, m) => void (err === null && this.onMemberEvent(m)) });
    nc.subscribe(`chat.${this.id}.typing.*`, { callback: (err, m) => void (err === null && this.onTyping(m)) });
    void this.watch(nc);
    await nc.flush();
    this.connected();
    await this.join();
    this.resend();
  }

  private async fetchToken(): Promise<TokenResponse> {
    const me = await this.session.roomIdentity();
    this.me = me;
    try {
      return await this.session.requestToken([this.id], me.name);
    } catch (err) {
      throw asGone(err) ?? err;
    }
  }

  /** setToken keeps tok for the next (re)connect and schedules its renewal. */
  private setToken(tok: TokenResponse): void {
    this.token = tok;
    clearTimeout(this.refreshTimer);
    const life = tokenLifetime(tok);
    this.scheduleRefresh(refreshDelay(life), Date.now() + life, 0);
  }

  private scheduleRefresh(delay: number, expiresAt: number, attempt: number): void {
    this.refreshDue = { at: Date.now() + delay, expiresAt, attempt };
    this.refreshTimer = setTimeout(async () => {
      if (this.stopped) return;
      try {
        this.setToken(await this.fetchToken());
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof RoomGone) {
          this.gone(err);
          return;
        }
        this.scheduleRefresh(retryDelay(attempt, expiresAt - Date.now()), expiresAt, attempt + 1);
      }
    }, delay);
  }

  /** watch follows the connection's status, and recovers when nats.js gives up. */
  private async watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then(() => {
      if (this.nc === nc && !this.stopped) void this.recover();
    });
    try {
      for await (const s of nc.status()) {
        if (this.nc !== nc || this.stopped) return;
        switch (s.type) {
          case "disconnect":
          case "reconnecting":
            this.setConn("reconnecting");
            break;
          case "reconnect":
            this.reconnectAttempts = 0;
            this.connected();
            // Entries broadcast while away are read from the history, and
            // joining again renews presence and the member list.
            this.follower.reconnected();
            void this.join()
              .catch((err) => this.onBackgroundError(err))
              .then(() => this.resend());
            break;
        }
      }
    } catch {
      // The status stream ends with the connection; closed() handles that.
    }
  }

  /**
   * recover makes a new connection when the old one closed for good (two
   * authentication failures in a row, say, after a token could not be
   * renewed in time), then reads what was missed.
   */
  private async recover(): Promise<void> {
    this.nc = null;
    this.setConn("reconnecting");
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.connect();
        this.follower.reconnected();
        return;
      } catch (err) {
        if (this.stopped) return;
        const gone = asGone(err);
        if (gone !== null) {
          this.gone(gone);
          return;
        }
        this.closeNats();
        this.setConn(isNetworkError(err) || attempt > 2 ? "offline" : "reconnecting");
        await sleep(retryDelay(attempt, 0));
      }
    }
  }

  private closeNats(): void {
    const nc = this.nc;
    this.nc = null;
    if (nc !== null) void nc.close().catch(() => {});
  }

  /** request sends a JSON request to the gateway and reads its JSON reply. */
  private async request<T extends { ok: boolean; error?: { code: string; message: string } }>(
    op: string,
    body: unknown,
  ): Promise<T> {
    const nc = this.nc;
    if (nc === null || this.me === null) throw new Error("Not connected.");
    const msg = await nc.request(userSubject(this.id, op, this.me.id), JSON.stringify(body), {
      timeout: REQUEST_TIMEOUT_MS,
    });
    const reply = msg.json<T>();
    if (!reply.ok) {
      const e = reply.error ?? { code: "internal", message: "The server refused without saying why." };
      throw asGone(e) ?? new GatewayError(e.code, e.message);
    }
    return reply;
  }

  private async join(): Promise<void> {
    const me = await this.session.roomIdentity();
    this.me = me;
    const reply = await this.request<JoinReply>("join", { name: me.name });
    if (this.stopped) return;
    this.update((r) => ({ ...r, myName: reply.name ?? me.name, members: sortMembers(reply.members ?? []) }));
  }

  private async heartbeat(): Promise<void> {
    try {
      await this.request<Reply>("here", {});
    } catch (err) {
      if (err instanceof GatewayError && err.code === "not_joined") {
        await this.join().catch((e) => this.onBackgroundError(e));
        return;
      }
      this.onBackgroundError(err);
    }
  }

  private async history(afterSeq: number): Promise<HistoryPage> {
    const reply = await this.request<HistoryReply>("history", { after_seq: afterSeq, limit: 500 });
    const messages = (reply.messages ?? []).filter((e) => isEnvelope(e) && e.room === this.id);
    return { messages, last_seq: reply.last_seq };
  }

  private onBackgroundError(err: unknown): void {
    const gone = asGone(err);
    if (gone !== null) this.gone(gone);
  }

  private onEntry(m: Msg): void {
    let e: unknown;
    try {
      e = m.json();
    } catch {
      return;
    }
    if (isEnvelope(e) && e.room === this.id) this.follower.live(e);
  }

  private onMemberEvent(m: Msg): void {
    let ev: MemberEvent;
    try {
      ev = m.json<MemberEvent>();
    } catch {
      return;
    }
    if (ev.room !== this.id) return;
    const member = ev.member;
    if (ev.type === "room_closed") {
      this.gone(new RoomGone("closed", "The room closed."));
    } else if ((ev.type === "join" || ev.type === "rename") && member !== undefined && isMember(member)) {
      this.update((r) => ({ ...r, members: sortMembers([...r.members.filter((x) => x.id !== member.id), member]) }));
    } else if (ev.type === "leave" && member !== undefined && isMember(member)) {
      this.typingUntil.delete(member.id);
      this.update((r) => ({ ...r, members: r.members.filter((x) => x.id !== member.id), typing: this.typingIds() }));
    }
  }

  private onTyping(m: Msg): void {
    const user = m.subject.slice(m.subject.lastIndexOf(".") + 1);
    if (user === this.me?.id) return;
    this.typingUntil.set(user, Date.now() + TYPING_SHOW_MS);
    this.updateTyping();
  }

  private typingIds(): string[] {
    const now = Date.now();
    for (const [id, until] of this.typingUntil) if (until <= now) this.typingUntil.delete(id);
    return [...this.typingUntil.keys()].sort();
  }

  private updateTyping(): void {
    const ids = this.typingIds();
    this.update((r) => (sameList(r.typing, ids) ? r : { ...r, typing: ids }));
    clearTimeout(this.typingTimer);
    if (ids.length > 0 && !this.stopped) {
      const next = Math.min(...this.typingUntil.values()) - Date.now();
      this.typingTimer = setTimeout(() => this.updateTyping(), Math.max(50, next));
    }
  }

  /** deliver verifies entries (in seq order, as they came) and shows them. */
  private deliver(entries: Envelope[]): void {
    const live = this.historyLoaded;
    this.verifyChain = this.verifyChain.then(async () => {
      const views = await Promise.all(entries.map((e) => this.view(e)));
      if (this.stopped) return;
      for (const v of views) if (isChat(v.type)) this.typingUntil.delete(v.from.id);
      const typing = this.typingIds();
      const arrived = new Set(views.filter((v) => v.own).map((v) => v.id));
      for (const id of arrived) {
        this.acked.delete(id);
        this.inflight.delete(id); // here already: no need to send it again
        this.files.delete(id);
      }
      const announce = live ? views.filter((v) => !v.own) : [];
      // A member who took a new name rejoins without an event: their live
      // messages carry the name they have now.
      const names = new Map(live ? views.filter((v) => isChat(v.type)).map((v) => [v.from.id, v.from]) : []);
      this.update((r) => {
        let all = r.entries.concat(views);
        if (all.length > MAX_VIEW_ENTRIES) all = all.slice(all.length - MAX_VIEW_ENTRIES);
        const last = announce[announce.length - 1];
        return {
          ...r,
          entries: all,
          local: r.local.filter((l) => !arrived.has(l.id)),
          typing: sameList(r.typing, typing) ? r.typing : typing,
          members: renamed(r.members, names),
          announcement: last === undefined ? r.announcement : { n: ++this.announced, text: announcementText(last) },
        };
      });
    }).catch(() => {});
  }

  private async view(e: Envelope): Promise<ViewEntry> {
    const own = e.from.id === this.me?.id;
    const base = { seq: e.seq, type: e.type, from: e.from, sentAt: e.sent_at, own };
    if (!isChat(e.type)) return { ...base, id: "", text: "", verified: true };
    const text = e.text ?? "";
    const id = e.id ?? "";
    if (e.type === "image") {
      const upload = e.upload ?? e.image?.id ?? "";
      const verified = await verifyImage(e.from.id, this.id, id, upload, text, e.sig ?? "");
      // A malformed image part costs the thumbnail its shape, not the entry its place.
      return { ...base, id, text, verified, upload, image: isImageInfo(e.image) ? e.image : undefined };
    }
    if (e.ct !== undefined || this.sealed) {
      // The signature covers the ciphertext, so it is checked first; a text
      // is shown only when it decrypts and reads as a text message.
      const ct = e.ct ?? "";
      const verified = await verifyMessage(e.from.id, this.id, id, ct, e.sig ?? "");
      const plain = this.key === null || ct === "" ? null : await decrypt(this.key, this.id, e.from.id, id, ct);
      if (plain === null || !validSealedText(plain)) return { ...base, id, text: "", verified, undecryptable: true };
      return { ...base, id, text: plain, verified };
    }
    const verified = await verifyMessage(e.from.id, this.id, id, text, e.sig ?? "");
    return { ...base, id, text, verified };
  }

  send(text: string): void {
    if (this.me === null || this.stopped) return;
    if (this.sealed) {
      void this.sendSealed(text);
      return;
    }
    const id = newMessageId();
    const sig = signMessage(this.me.identity.keyPair, this.id, id, text);
    this.lastTypingSent = 0;
    this.update((r) => ({ ...r, local: [...r.local, { id, text, sig, status: "sending", retryable: false }] }));
    void this.transmit(id, { id, text, sig });
  }

  /**
   * sendSealed shows the text as this user's message at once, then
   * encrypts it and sends the ciphertext, signed in place of the text.
   */
  private async sendSealed(text: string): Promise<void> {
    const me = this.me;
    const key = this.key;
    if (me === null || key === null) return;
    const id = newMessageId();
    this.lastTypingSent = 0;
    this.update((r) => ({ ...r, local: [...r.local, { id, text, sig: "", status: "sending", retryable: false }] }));
    if (!validSealedText(text)) {
      // The gateway cannot read a sealed text to refuse it: every receiver
      // would show it as undecryptable instead.
      this.setLocal(id, (l) => ({
        ...l,
        status: "failed",
        error: "Messages cannot contain control characters.",
        errorCode: "control_chars",
        retryable: false,
      }));
      return;
    }
    let ct: string;
    try {
      ct = await encrypt(key, this.id, me.id, id, text);
    } catch {
      this.setLocal(id, (l) => ({ ...l, status: "failed", error: "This browser could not encrypt the message.", retryable: false }));
      return;
    }
    if (this.stopped) return;
    const sig = signMessage(me.identity.keyPair, this.id, id, ct);
    this.setLocal(id, (l) => ({ ...l, ct, sig }));
    void this.transmit(id, { id, ct, sig });
  }

  /**
   * sendImage shows the image as this user's message at once, uploads it
   * (the progress on show), then signs and sends the message that points
   * at the upload. The file is kept for a retry until the message is in
   * the history.
   */
  sendImage(file: File, caption: string): void {
    // Images would go out unencrypted: the gateway refuses them in sealed rooms.
    if (this.me === null || this.stopped || this.sealed) return;
    const id = newMessageId();
    this.files.set(id, file);
    this.lastTypingSent = 0;
    const image: LocalImage = { name: file.name, size: file.size, progress: 0, upload: null };
    this.update((r) => ({ ...r, local: [...r.local, { id, text: caption, sig: "", status: "uploading", image, retryable: false }] }));
    void this.upload(id);
  }

  private setLocal(id: string, fn: (l: LocalMessage) => LocalMessage): void {
    this.update((r) => ({ ...r, local: r.local.map((l) => (l.id === id ? fn(l) : l)) }));
  }

  private async upload(id: string): Promise<void> {
    const file = this.files.get(id);
    const me = this.me;
    if (file === undefined || me === null) return;
    const fail = (err: unknown) => {
      this.setLocal(id, (l) => ({
        ...l,
        status: "failed",
        error: api.uploadProblem(err),
        errorCode: err instanceof api.ApiError ? err.code : undefined,
        retryable: api.uploadRetryable(err),
      }));
    };
    if (this.token === null) {
      fail(new Error("Not connected to the room yet; try again in a moment."));
      return;
    }
    let shown = 0;
    const req = api.uploadImage(this.token.jwt, this.id, file, (sent, total) => {
      // Whole percents: a render per progress event would be wasted.
      const p = Math.floor((sent / Math.max(1, total)) * 100) / 100;
      if (p === shown) return;
      shown = p;
      this.setLocal(id, (l) => (l.image === undefined ? l : { ...l, image: { ...l.image, progress: p } }));
    });
    this.uploads.set(id, req);
    let up: Upload;
    try {
      up = await req.done;
    } catch (err) {
      if (this.uploads.get(id) !== req || this.stopped) return; // called off, or the room left
      this.uploads.delete(id);
      fail(err);
      const gone = asGone(err);
      if (gone !== null) this.gone(gone);
      return;
    } finally {
      if (this.uploads.get(id) === req) this.uploads.delete(id);
    }
    const caption = this.session.getState().room?.local.find((l) => l.id === id)?.text;
    if (this.stopped || caption === undefined) return; // removed meanwhile
    const sig = signImage(me.identity.keyPair, this.id, id, up.upload_id, caption);
    this.setLocal(id, (l) =>
      l.image === undefined ? l : { ...l, sig, status: "sending", image: { ...l.image, progress: 1, upload: up } },
    );
    void this.transmit(id, { id, type: "image", upload: up.upload_id, text: caption, sig });
  }

  /** loadImage reads an image of this room with the room's token. */
  loadImage(uploadId: string, signal?: AbortSignal): Promise<Blob> {
    if (this.token === null) return Promise.reject(new Error("Not connected to the room yet."));
    return api.fetchImage(this.token.jwt, uploadId, signal);
  }

  async imageLink(uploadId: string): Promise<string> {
    if (this.token === null) throw new Error("Not connected to the room yet.");
    return (await api.imageLink(this.token.jwt, uploadId)).url;
  }

  retry(localId: string): void {
    let found: LocalMessage | undefined;
    this.update((r) => ({
      ...r,
      local: r.local.map((l) => {
        if (l.id !== localId) return l;
        found = l;
        return { ...l, status: "sending", error: undefined, retryable: false };
      }),
    }));
    if (found === undefined) return;
    if (found.image !== undefined && found.image.upload === null) {
      // The upload itself failed: upload again.
      this.setLocal(localId, (l) => ({ ...l, status: "uploading", image: l.image && { ...l.image, progress: 0 } }));
      void this.upload(localId);
      return;
    }
    // The same id: should the first try have been stored after all, the
    // gateway answers with its ack and stores nothing twice.
    void this.transmit(found.id, sendBody(found));
  }

  dismiss(localId: string): void {
    const up = this.uploads.get(localId);
    this.uploads.delete(localId);
    up?.abort();
    this.files.delete(localId);
    this.inflight.delete(localId);
    // A message on its way to the gateway may be stored already; only a
    // failed one, or an image still uploading, is gone for sure.
    this.update((r) => ({ ...r, local: r.local.filter((l) => l.id !== localId || l.status === "sending") }));
  }

  private async transmit(id: string, body: SendBody, again = false): Promise<void> {
    const attempt = {};
    this.inflight.set(id, { id, body, epoch: this.epoch, attempt });
    const fail = (error: string, retryable: boolean) => {
      this.inflight.delete(id);
      this.update((r) => ({
        ...r,
        local: r.local.map((l) => (l.id === id ? { ...l, status: "failed", error, retryable } : l)),
      }));
    };
    try {
      const ack = await this.request<Ack>("send", body);
      // Whichever attempt is answered first: the message is stored.
      this.inflight.delete(id);
      if (this.isLocal(id)) this.acked.add(id);
      if (ack.seq !== undefined) this.follower.expect(ack.seq);
    } catch (err) {
      // A later attempt took over, or another one was acknowledged.
      if (this.stopped || this.inflight.get(id)?.attempt !== attempt || this.acked.has(id)) return;
      if (err instanceof RoomGone) {
        fail(err.message, false);
        this.gone(err);
      } else if (err instanceof GatewayError && err.code === "not_joined" && !again) {
        // Presence ran out while away: join again, then send once more.
        try {
          await this.join();
          void this.transmit(id, body, true);
        } catch (e) {
          this.onBackgroundError(e);
          fail(err.message, true);
        }
      } else if (err instanceof GatewayError) {
        fail(err.message, ["not_joined", "rate_limited", "unavailable"].includes(err.code));
      } else if (this.conn !== "connected") {
        // No connection: it stays in flight and goes out again (with the
        // same id, so never twice) once there is one.
        this.update((r) => ({ ...r, local: r.local.map((l) => (l.id === id ? { ...l, waiting: true } : l)) }));
      } else {
        fail(problemText(err), true);
      }
    }
  }

  /** isLocal reports whether message id is still shown as this user's, not yet in the history. */
  private isLocal(id: string): boolean {
    return this.session.getState().room?.local.some((l) => l.id === id) ?? false;
  }

  typing(): void {
    const now = Date.now();
    if (this.nc === null || this.me === null || now - this.lastTypingSent < TYPING_SEND_MS) return;
    this.lastTypingSent = now;
    try {
      this.nc.publish(userSubject(this.id, "typing", this.me.id), "{}");
    } catch {
      // Closed or draining: no hint then.
    }
  }

  async rename(): Promise<void> {
    if (this.stopped || this.nc === null) return;
    this.setToken(await this.fetchToken());
    await this.join();
  }

  /**
   * pageVisible catches up with timers a hidden page ran late: a token
   * renewal that is due, and presence.
   */
  pageVisible(): void {
    if (this.stopped || !this.historyLoaded) return;
    const due = this.refreshDue;
    if (Date.now() >= due.at) {
      clearTimeout(this.refreshTimer);
      this.scheduleRefresh(0, due.expiresAt, due.attempt);
    }
    void this.heartbeat();
  }

  /** pageShown rejoins when the page comes back from the back/forward cache. */
  pageShown(): void {
    if (this.stopped || this.nc === null) return;
    void this.join().catch((err) => this.onBackgroundError(err));
    this.follower.reconnected();
  }

  private gone(g: RoomGone): void {
    if (this.stopped) return;
    this.update((r) => ({
      ...r,
      phase: r.phase === "live" || g.phase === "closed" ? "closed" : "unknown",
      problem: g.message,
      typing: [],
    }));
    this.stop(false);
  }

  /** stop leaves the room (when leave) and closes the connection. */
  stop(leave: boolean): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const up of this.uploads.values()) up.abort();
    this.uploads.clear();
    this.follower.stop();
    clearTimeout(this.refreshTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.offlineTimer);
    clearTimeout(this.typingTimer);
    const nc = this.nc;
    this.nc = null;
    if (nc !== null) {
      if (leave && this.me !== null) {
        try {
          nc.publish(userSubject(this.id, "leave", this.me.id), "{}");
        } catch {
          // Already closed: presence runs out by itself.
        }
      }
      void nc.drain().catch(() => nc.close().catch(() => {}));
    }
    this.session.connChanged();
  }
}

/** GatewayError is a refusal by the gateway, with its code and message. */
class GatewayError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function asGone(err: unknown): RoomGone | null {
  if (err instanceof RoomGone) return err;
  if (err instanceof api.ApiError || err instanceof GatewayError) return roomGone(err.code, err.message);
  if (typeof err === "object" && err !== null && "code" in err && "message" in err) {
    const e = err as { code: unknown; message: unknown };
    if (typeof e.code === "string" && typeof e.message === "string") return roomGone(e.code, e.message);
  }
  return null;
}

function isNetworkError(err: unknown): boolean {
  return err instanceof api.ApiError && err.status === 0;
}

/** problemText says what went wrong in words for people. */
export function problemText(err: unknown): string {
  if (err instanceof api.ApiError) {
    if (err.code === "rate_limited") return "Too many requests right now; retrying shortly.";
    return err.message;
  }
  if (err instanceof GatewayError) return err.message;
  if (err instanceof errors.TimeoutError) return "The server did not answer in time.";
  if (err instanceof errors.NoRespondersError || (err instanceof Error && err.cause instanceof errors.NoRespondersError)) {
    return "The chat service is not answering right now.";
  }
  if (err instanceof errors.ClosedConnectionError) return "Not connected.";
  if (err instanceof errors.ConnectionError) return "Cannot connect to the chat server.";
  if (err instanceof Error && err.message !== "") return err.message;
  return "Something went wrong.";
}

function announcementText(v: ViewEntry): string {
  if (v.type === "join") return `${v.from.name} joined`;
  if (v.type === "leave") return `${v.from.name} left`;
  if (v.undecryptable === true) return `${v.from.name}: a message that could not be decrypted`;
  if (v.type === "image") return v.text === "" ? `${v.from.name} sent an image` : `${v.from.name} sent an image: ${v.text}`;
  return `${v.from.name}: ${v.text}`;
}

/** isChat reports whether entries of type t are something a member sent (signed), not presence. */
function isChat(t: EntryType): boolean {
  return t === "message" || t === "image";
}

/** What chat.<room>.send.<user> carries: a text message, or an image message. */
type SendBody =
  | { id: string; text: string; sig: string }
  | { id: string; ct: string; sig: string }
  | { id: string; type: "image"; upload: string; text: string; sig: string };

/** sendBody is the request that sends l (again). */
function sendBody(l: LocalMessage): SendBody {
  if (l.image?.upload != null) return { id: l.id, type: "image", upload: l.image.upload.upload_id, text: l.text, sig: l.sig };
  if (l.ct !== undefined) return { id: l.id, ct: l.ct, sig: l.sig };
  return { id: l.id, text: l.text, sig: l.sig };
}

function isMember(m: unknown): m is Member {
  return typeof m === "object" && m !== null && typeof (m as Member).id === "string" && typeof (m as Member).name === "string";
}

function isEnvelope(e: unknown): e is Envelope {
  if (typeof e !== "object" || e === null) return false;
  const v = e as Envelope;
  return (
    typeof v.room === "string" &&
    Number.isSafeInteger(v.seq) &&
    v.seq > 0 &&
    (v.type === "message" || v.type === "image" || v.type === "join" || v.type === "leave") &&
    isMember(v.from) &&
    typeof v.sent_at === "string"
  );
}

function isImageInfo(i: unknown): i is ImageInfo {
  if (typeof i !== "object" || i === null) return false;
  const v = i as ImageInfo;
  return typeof v.id === "string" && typeof v.type === "string" && typeof v.width === "number" && typeof v.height === "number";
}

function sortMembers(members: Member[]): Member[] {
  return members.filter(isMember).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

/**
 * renamed gives members the names (and registered marks) in names (by id),
 * keeping the list when nothing changes.
 */
function renamed(members: Member[], names: Map<string, Member>): Member[] {
  const differs = (m: Member, n: Member | undefined) => n !== undefined && (n.name !== m.name || !!n.verified !== !!m.verified);
  if (!members.some((m) => differs(m, names.get(m.id)))) return members;
  return sortMembers(
    members.map((m) => {
      const n = names.get(m.id);
      return n === undefined ? m : { ...m, name: n.name, verified: n.verified === true };
    }),
  );
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
