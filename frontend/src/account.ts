// A registered account in the browser: its session (a bearer JWT that lives
// 15 minutes), kept and refreshed before it runs out, and the account's
// profile. Signed out, there is no session and natter is anonymous as ever.
// It reaches the TVM only through api.ts.
import * as api from "./api";
import type { KeyValueStore } from "./identity";
import { retryDelay, tokenLifetime } from "./tokens";
import type { Profile, SessionGrant } from "./types";

const sessionKey = "natter.session";

/** The session as kept: its JWT, when it expires on this clock, and the profile it was for. */
interface Kept {
  session: string;
  expiresAt: number;
  profile: Profile;
}

export interface AccountState {
  /** The signed-in account; null when anonymous. */
  profile: Profile | null;
  /** Why the session ended other than by logging out, for the person to read; null when nothing to say. */
  notice: string | null;
}

/** The routes Account uses: api.ts, or a stand-in in tests. */
export type AccountApi = Pick<
  typeof api,
  "login" | "signup" | "refreshSession" | "logout" | "me" | "updateMe" | "deleteMe" | "startTotp" | "confirmTotp" | "disableTotp"
>;

/** Less than this left and the session is refreshed at once. */
const REFRESH_MARGIN_MS = 60_000;
/** A session with less than this left is refreshed before it is used. */
const USE_MARGIN_MS = 5_000;

/**
 * sessionRefreshDelay is how long to wait before refreshing a session with
 * remainingMs left: at 80% of what is left, and at least a minute before it
 * expires, so that a refresh that fails once has time to be tried again
 * (an expired session cannot be refreshed). A 15-minute session is
 * refreshed after 12 minutes; one with less than a minute left, at once.
 */
export function sessionRefreshDelay(remainingMs: number): number {
  if (!(remainingMs > 0)) return 0;
  return Math.max(0, Math.min(remainingMs * 0.8, remainingMs - REFRESH_MARGIN_MS));
}

/**
 * sessionEnded reports whether err says the session is no good any more
 * (expired, logged out everywhere, the account gone): a 401 that is not
 * about a password or code the person just typed.
 */
export function sessionEnded(err: unknown): boolean {
  return err instanceof api.ApiError && err.status === 401 && err.code !== "invalid_credentials" && err.code !== "totp_required";
}

/** The part of a form an error belongs to. */
export type Field = "username" | "password" | "old_password" | "display_name" | "code" | "form";

/** What the person was doing, which says where an error goes and how to word it. */
export type Action = "signup" | "login" | "name" | "password" | "totp" | "delete";

export interface Problem {
  field: Field;
  message: string;
  /** login: the account has two-factor on; ask for the code. */
  needsCode?: boolean;
}

/** formatWait says how long to wait, in words. */
export function formatWait(seconds: number): string {
  if (seconds <= 1) return "a moment";
  if (seconds < 60) return `${Math.ceil(seconds)} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? "a minute" : `${minutes} minutes`;
}

/** accountProblem maps an error of the account API to the field it concerns and words for people. */
export function accountProblem(err: unknown, action: Action): Problem {
  if (!(err instanceof api.ApiError)) {
    return { field: "form", message: err instanceof Error && err.message !== "" ? err.message : "Something went wrong." };
  }
  switch (err.code) {
    case "invalid_username":
      return { field: "username", message: "Usernames are 3 to 32 characters: lower-case letters a–z, digits and _." };
    case "username_taken":
      return { field: "username", message: "That username is taken. Choose another." };
    case "weak_password":
      // The server's message says which rule the password breaks.
      return { field: "password", message: err.message };
    case "name_taken":
      return { field: "display_name", message: "Someone has registered that name. Choose another." };
    case "invalid_name":
      return { field: "display_name", message: err.message };
    case "totp_required":
      return { field: "code", message: "Two-factor is on: enter the 6-digit code from your authenticator app.", needsCode: true };
    case "invalid_code":
      return { field: "code", message: "That code is not right, or was used already. Wait for the next one and try again." };
    case "invalid_credentials":
      if (action === "password") return { field: "old_password", message: "Your current password is not right." };
      if (action === "delete") return { field: "password", message: "The password or code is not right." };
      return { field: "form", message: "Wrong username, password or code." };
    case "rate_limited":
      return {
        field: "form",
        message:
          err.retryAfter !== null
            ? `Too many attempts. Try again in ${formatWait(err.retryAfter)}.`
            : "Too many attempts. Wait a while and try again.",
      };
    case "network":
      return { field: "form", message: err.message };
  }
  if (sessionEnded(err)) return { field: "form", message: "Your session has ended. Sign in again." };
  return { field: "form", message: err.message };
}

/**
 * Account keeps the session of a registered account and refreshes it. The
 * session lives in memory and in localStorage (see README.md), so that a
 * room link opened in another tab, or a reload, is still signed in.
 */
export class Account {
  private kept: Kept | null = null;
  private state: AccountState = { profile: null, notice: null };
  private readonly listeners = new Set<(identityChanged: boolean) => void>();
  private readonly store: KeyValueStore | null;
  private readonly api: AccountApi;
  private readonly now: () => number;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshDue = 0;
  private refreshing: Promise<void> | null = null;

  constructor(store: KeyValueStore | null, impl: AccountApi = api, now: () => number = Date.now) {
    this.store = store;
    this.api = impl;
    this.now = now;
    const kept = readKept(store);
    if (kept !== null && kept.expiresAt > now()) {
      this.kept = kept;
      this.state = { profile: kept.profile, notice: null };
    } else if (kept !== null) {
      writeKept(store, null);
    }
  }

  getState = (): AccountState => this.state;

  /** subscribe calls listener on every change; identityChanged when signed in or out, or the display name changed. */
  subscribe(listener: (identityChanged: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(identityChanged: boolean): void {
    for (const l of this.listeners) l(identityChanged);
  }

  /** start schedules the refresh of a kept session and checks it is still good. */
  start(): void {
    if (this.kept === null) return;
    this.schedule();
    void this.api
      .me(this.kept.session)
      .then((profile) => this.setProfile(profile))
      .catch((err) => {
        if (sessionEnded(err)) this.drop("Your session has ended. Sign in again to use your registered name.");
      });
  }

  /** The time the session expires, on this clock; null when signed out. */
  get expiresAt(): number | null {
    return this.kept?.expiresAt ?? null;
  }

  /**
   * bearer is the session to send, refreshed first when it is about to
   * expire; null when signed out (or once it could not be kept).
   */
  async bearer(): Promise<string | null> {
    if (this.kept === null) return null;
    if (this.kept.expiresAt - this.now() < USE_MARGIN_MS) await this.refresh();
    return this.kept?.session ?? null;
  }

  /** adoptStored takes up what another tab wrote: a new session, or none. */
  adoptStored(): void {
    const kept = readKept(this.store);
    const before = this.kept;
    if (kept === null || kept.expiresAt <= this.now()) {
      if (before !== null) this.clear(null);
      return;
    }
    if (before !== null && before.session === kept.session) return;
    this.kept = kept;
    this.schedule();
    this.setState({ profile: kept.profile, notice: null }, identityOf(before?.profile ?? null) !== identityOf(kept.profile));
  }

  /** refresh trades the session for a new one; once it is rejected, the account is signed out. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    for (let attempt = 0; this.kept !== null; attempt++) {
      const kept = this.kept;
      try {
        const grant = await this.api.refreshSession(kept.session);
        if (this.kept !== kept) return; // signed out or in again meanwhile
        this.accept(grant, grant.user ?? kept.profile);
        return;
      } catch (err) {
        if (this.kept !== kept) return;
        const left = kept.expiresAt - this.now();
        if (sessionEnded(err) || left <= 0) {
          this.drop("Your session has ended. Sign in again to use your registered name.");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, retryDelay(attempt, left)));
      }
    }
  }

  /** pageVisible refreshes a session whose refresh a hidden page's timer ran late for. */
  pageVisible(): void {
    if (this.kept !== null && this.now() >= this.refreshDue) void this.refresh();
  }

  private schedule(): void {
    clearTimeout(this.refreshTimer);
    if (this.kept === null) return;
    const delay = sessionRefreshDelay(this.kept.expiresAt - this.now());
    this.refreshDue = this.now() + delay;
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  private accept(grant: SessionGrant, profile: Profile): void {
    const before = this.state.profile;
    this.kept = {
      session: grant.session,
      expiresAt: this.now() + tokenLifetime({ jwt: grant.session, expires_at: grant.expires_at }, this.now()),
      profile,
    };
    writeKept(this.store, this.kept);
    this.schedule();
    this.setState({ profile, notice: null }, identityOf(before) !== identityOf(profile));
  }

  private setProfile(profile: Profile): void {
    if (this.kept === null) return;
    const before = this.state.profile;
    this.kept = { ...this.kept, profile };
    writeKept(this.store, this.kept);
    this.setState({ ...this.state, profile }, identityOf(before) !== identityOf(profile));
  }

  private setState(state: AccountState, identityChanged: boolean): void {
    this.state = state;
    this.emit(identityChanged);
  }

  /** drop forgets the session (the server no longer takes it) and says why. */
  drop(notice: string | null): void {
    if (this.kept === null && this.state.profile === null) return;
    this.clear(notice);
  }

  private clear(notice: string | null): void {
    clearTimeout(this.refreshTimer);
    const wasSignedIn = this.state.profile !== null;
    this.kept = null;
    writeKept(this.store, null);
    this.setState({ profile: null, notice }, wasSignedIn);
  }

  dismissNotice(): void {
    if (this.state.notice !== null) this.setState({ ...this.state, notice: null }, false);
  }

  /** session is the current session, for a call that needs one; it throws when signed out. */
  private async session(): Promise<string> {
    const s = await this.bearer();
    if (s === null) throw new api.ApiError(401, "unauthorized", "You are not signed in.");
    return s;
  }

  /** withSession runs a call with the session; a session the server rejects signs the account out. */
  private async withSession<T>(fn: (session: string) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.session());
    } catch (err) {
      if (sessionEnded(err)) this.drop("Your session has ended. Sign in again.");
      throw err;
    }
  }

  /** login opens a session: password, code, or both. */
  async login(username: string, password: string | null, code?: string): Promise<void> {
    const grant = await this.api.login(username, password, code);
    const profile = grant.user ?? (await this.api.me(grant.session));
    this.accept(grant, profile);
  }

  /** signup registers the account, then logs in with it. */
  async signup(username: string, password: string, displayName: string): Promise<void> {
    await this.api.signup(username, password, displayName);
    await this.login(username, password);
  }

  /** logout ends the account's sessions; signed out here whatever the server says. */
  async logout(): Promise<void> {
    const s = this.kept?.session;
    this.clear(null);
    if (s !== undefined) await this.api.logout(s).catch(() => {});
  }

  async rename(displayName: string): Promise<void> {
    const profile = await this.withSession((s) => this.api.updateMe(s, { display_name: displayName }));
    this.setProfile(profile);
  }

  /**
   * changePassword sets a new password. That ends every session, this one
   * too: it logs in again with the new password when two-factor is off, and
   * reports false when the person has to sign in again themselves.
   */
  async changePassword(oldPassword: string, password: string): Promise<boolean> {
    const profile = await this.withSession((s) => this.api.updateMe(s, { password, old_password: oldPassword }));
    if (profile.totp.enabled) {
      this.clear("Your password is changed. Sign in again with the new one.");
      return false;
    }
    try {
      await this.login(profile.username, password);
      return true;
    } catch {
      this.clear("Your password is changed. Sign in again with the new one.");
      return false;
    }
  }

  startTotp(passwordless: boolean) {
    return this.withSession((s) => this.api.startTotp(s, passwordless));
  }

  /** confirmTotp turns two-factor on; as every two-factor change, it ends every session. */
  async confirmTotp(code: string): Promise<void> {
    await this.withSession((s) => this.api.confirmTotp(s, code));
    this.clear("Two-factor is on. Sign in again with a code from your authenticator app.");
  }

  /** disableTotp turns two-factor off, which ends every session. */
  async disableTotp(code: string): Promise<void> {
    await this.withSession((s) => this.api.disableTotp(s, code));
    this.clear("Two-factor is off. Sign in again.");
  }

  /** deleteAccount deletes the account for good; natter goes on anonymously. */
  async deleteAccount(proof: { password: string } | { totp: string }): Promise<void> {
    await this.withSession((s) => this.api.deleteMe(s, proof));
    this.clear("Your account is deleted. You go on anonymously.");
  }
}

/** identityOf is what a token depends on: who, and under which name. */
function identityOf(p: Profile | null): string {
  return p === null ? "" : `${p.id}\n${p.display_name}`;
}

function readKept(store: KeyValueStore | null): Kept | null {
  let raw: string | null = null;
  try {
    raw = store?.getItem(sessionKey) ?? null;
  } catch {
    return null;
  }
  if (raw === null) return null;
  try {
    const k = JSON.parse(raw) as Partial<Kept>;
    const p = k.profile;
    if (
      typeof k.session === "string" &&
      typeof k.expiresAt === "number" &&
      typeof p === "object" &&
      p !== null &&
      typeof p.id === "string" &&
      typeof p.display_name === "string" &&
      typeof p.username === "string"
    ) {
      return { session: k.session, expiresAt: k.expiresAt, profile: { ...p, totp: p.totp ?? { enabled: false, passwordless: false } } };
    }
  } catch {
    // Not ours, or from another version: as if signed out.
  }
  return null;
}

function writeKept(store: (KeyValueStore & Partial<Pick<Storage, "removeItem">>) | null, kept: Kept | null): void {
  try {
    if (kept !== null) store?.setItem(sessionKey, JSON.stringify(kept));
    else if (store?.removeItem !== undefined) store.removeItem(sessionKey);
    else store?.setItem(sessionKey, "");
  } catch {
    // Full or blocked: the session lasts for this page only.
  }
}

/** The localStorage key of the session, for the storage events of other tabs. */
export const SESSION_STORAGE_KEY = sessionKey;
