// The TVM's HTTP API. With nats.ts, the only module that reaches the network.
import type { Enrolment, Profile, PublicProfile, Room, SessionGrant, TokenResponse } from "./types";

/** ApiError is an error answer of the TVM, or status 0 when it could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds to wait before trying again, from Retry-After; null when the answer had none. */
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * parseRetryAfter reads a Retry-After header: whole seconds, or an HTTP
 * date; null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The TVM's base URL: NEXT_PUBLIC_AUTH_BASE_URL at build time, or this page's origin. */
export function baseUrl(): string {
  const configured = (import.meta.env.NEXT_PUBLIC_AUTH_BASE_URL as string | undefined)?.trim();
  return (configured || window.location.origin).replace(/\/+$/, "");
}

/** call makes one request and returns its JSON answer; opts.empty accepts an answer without a body (204). */
async function call<T>(
  method: string,
  path: string,
  opts: { body?: unknown; bearer?: string; empty?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.bearer !== undefined) headers.Authorization = `Bearer ${opts.bearer}`;
  let resp: Response;
  try {
    resp = await fetch(baseUrl() + path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection.");
  }
  let data: unknown;
  try {
    data = await resp.json();
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    const e = (data as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof e?.code === "string" ? e.code : "http_" + resp.status;
    const message = typeof e?.message === "string" ? e.message : `The server answered ${resp.status}.`;
    throw new ApiError(resp.status, code, message, parseRetryAfter(resp.headers.get("Retry-After")));
  }
  if (data === undefined && opts.empty === true) return undefined as T;
  if (data === undefined) throw new ApiError(resp.status, "malformed", "The server sent an unreadable answer.");
  return data as T;
}

/**
 * token asks for a token for rooms; no name gets a random friendly one.
 * With a session the token is the account's, named with its display name
 * (a name is then best left out: any other than the display name is refused).
 */
export function token(publicKey: string, name: string | null, rooms: string[], session?: string): Promise<TokenResponse> {
  const body: Record<string, unknown> = { public_key: publicKey, rooms };
  if (name !== null && name !== "") body.name = name;
  return call<TokenResponse>("POST", "/api/v1/token", { body, bearer: session });
}

/** createRoom creates a room with the bearer jwt, named after an element when name is empty. */
export function createRoom(jwt: string, name?: string): Promise<Room> {
  const body = name !== undefined && name.trim() !== "" ? { name: name.trim() } : {};
  return call<Room>("POST", "/api/v1/rooms", { body, bearer: jwt });
}

/** listRooms lists the open rooms, busiest first. */
export async function listRooms(): Promise<Room[]> {
  const r = await call<{ rooms: Room[] | null }>("GET", "/api/v1/rooms");
  return r.rooms ?? [];
}

/** getRoom reads one room: ApiError 404 unknown_room or 410 room_closed when it is not open. */
export function getRoom(id: string): Promise<Room> {
  return call<Room>("GET", "/api/v1/rooms/" + encodeURIComponent(id));
}

// Accounts (docs/accounts.md). Every route but signup, login and the
// public profile takes the session as its bearer.

/** signup registers an account; it does not log in. */
export function signup(username: string, password: string, displayName: string): Promise<Profile> {
  return call<Profile>("POST", "/api/v1/users", { body: { username, password, display_name: displayName } });
}

/**
 * login opens a session. A passwordless account sends no password, only
 * the code; an account with two-factor on sends both.
 */
export function login(username: string, password: string | null, totp?: string): Promise<SessionGrant> {
  const body: Record<string, string> = { username };
  if (password !== null && password !== "") body.password = password;
  if (totp !== undefined && totp !== "") body.totp = totp;
  return call<SessionGrant>("POST", "/api/v1/sessions", { body });
}

/** refreshSession trades a session still valid for a new one, 15 minutes from now. */
export function refreshSession(session: string): Promise<SessionGrant> {
  return call<SessionGrant>("POST", "/api/v1/sessions/refresh", { bearer: session });
}

/** logout ends every session of the account. */
export function logout(session: string): Promise<void> {
  return call<void>("DELETE", "/api/v1/sessions", { bearer: session, empty: true });
}

/** me reads the account of the session. */
export function me(session: string): Promise<Profile> {
  return call<Profile>("GET", "/api/v1/users/me", { bearer: session });
}

/** The changes PATCH /api/v1/users/me accepts: a new password needs the old one. */
export interface ProfileChange {
  display_name?: string;
  password?: string;
  old_password?: string;
}

/** updateMe changes the display name or the password; a new password ends every session. */
export function updateMe(session: string, change: ProfileChange): Promise<Profile> {
  return call<Profile>("PATCH", "/api/v1/users/me", { body: change, bearer: session });
}

/** deleteMe deletes the account, proven with its password or, for a passwordless one, a code. */
export function deleteMe(session: string, proof: { password: string } | { totp: string }): Promise<void> {
  return call<void>("DELETE", "/api/v1/users/me", { body: proof, bearer: session, empty: true });
}

/** startTotp starts (or starts again) two-factor enrolment: a secret and its QR code. */
export function startTotp(session: string, passwordless: boolean): Promise<Enrolment> {
  const body = passwordless ? { passwordless: true } : {};
  return call<Enrolment>("POST", "/api/v1/users/me/totp", { body, bearer: session });
}

/** confirmTotp turns two-factor on with a code from the enrolled secret. */
export function confirmTotp(session: string, code: string): Promise<Profile> {
  return call<Profile>("POST", "/api/v1/users/me/totp/confirm", { body: { code }, bearer: session });
}

/** disableTotp turns two-factor off with a current code. */
export function disableTotp(session: string, code: string): Promise<Profile> {
  return call<Profile>("DELETE", "/api/v1/users/me/totp", { body: { code }, bearer: session });
}

/** publicProfile reads what anyone may know of an account. */
export function publicProfile(id: string): Promise<PublicProfile> {
  return call<PublicProfile>("GET", "/api/v1/users/" + encodeURIComponent(id));
}
