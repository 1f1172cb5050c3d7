// The TVM's HTTP API. With nats.ts, the only module that reaches the network.
import type { Enrolment, Profile, PublicProfile, Room, SessionGrant, TokenResponse, Upload } from "./types";

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
  const err = answerError(resp.status, data, resp.headers.get("Retry-After"));
  if (err !== null) throw err;
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

/**
 * createRoom creates a room with the bearer jwt, named after an element when
 * name is empty; sealed makes it a sealed room (docs/sealed.md). The key of
 * a sealed room is never part of the request.
 */
export function createRoom(jwt: string, name?: string, sealed = false): Promise<Room> {
  const body: { name?: string; sealed?: boolean } = name !== undefined && name.trim() !== "" ? { name: name.trim() } : {};
  if (sealed) body.sealed = true;
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

// Images (docs/uploads.md). Every route takes the room's natter token as
// its bearer.

/** The largest file the TVM takes by default (NATTER_UPLOAD_MAX_BYTES): checked before sending a byte. */
export const MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

/** An upload in progress: its answer, and a way to call it off. */
export interface UploadRequest {
  done: Promise<Upload>;
  abort: () => void;
}

/**
 * uploadImage sends file to room as the single multipart part `file`. It
 * uses XMLHttpRequest because fetch reports no upload progress; onProgress
 * gets the bytes sent and the total (the whole request body). An abort
 * rejects with ApiError code "aborted".
 */
export function uploadImage(
  jwt: string,
  room: string,
  file: Blob,
  onProgress?: (sent: number, total: number) => void,
): UploadRequest {
  const xhr = new XMLHttpRequest();
  const done = new Promise<Upload>((resolve, reject) => {
    xhr.open("POST", `${baseUrl()}/api/v1/rooms/${encodeURIComponent(room)}/uploads`);
    xhr.setRequestHeader("Authorization", `Bearer ${jwt}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "text";
    if (onProgress !== undefined) {
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
    }
    xhr.onload = () => {
      let data: unknown;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = undefined;
      }
      const err = answerError(xhr.status, data, xhr.getResponseHeader("Retry-After"));
      if (err !== null) reject(err);
      else if (!isUpload(data)) reject(new ApiError(xhr.status, "malformed", "The server sent an unreadable answer."));
      else resolve(data);
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "Cannot reach the server. Check your connection."));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => reject(new ApiError(0, "aborted", "The upload was cancelled."));
    const form = new FormData();
    form.append("file", file, file instanceof File ? file.name : "image");
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}

/** answerError is the ApiError of an answer that is not a success, or null for a 2xx. */
function answerError(status: number, data: unknown, retryAfter: string | null): ApiError | null {
  if (status >= 200 && status < 300) return null;
  const e = (data as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof e?.code === "string" ? e.code : "http_" + status;
  const message = typeof e?.message === "string" ? e.message : `The server answered ${status}.`;
  return new ApiError(status, code, message, parseRetryAfter(retryAfter));
}

function isUpload(d: unknown): d is Upload {
  if (typeof d !== "object" || d === null) return false;
  const u = d as Upload;
  return typeof u.upload_id === "string" && u.upload_id !== "" && typeof u.type === "string";
}

/**
 * fetchImage reads an uploaded image's bytes with the room's token. The
 * browser may keep them (the answer is private, immutable, for an hour).
 */
export async function fetchImage(jwt: string, uploadId: string, signal?: AbortSignal): Promise<Blob> {
  let resp: Response;
  try {
    resp = await fetch(`${baseUrl()}/api/v1/uploads/${encodeURIComponent(uploadId)}`, {
      headers: { Authorization: `Bearer ${jwt}` },
      credentials: "omit",
      signal,
    });
  } catch {
    if (signal?.aborted === true) throw new ApiError(0, "aborted", "Loading the image was cancelled.");
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection.");
  }
  if (!resp.ok) {
    let data: unknown;
    try {
      data = await resp.json();
    } catch {
      data = undefined;
    }
    throw answerError(resp.status, data, resp.headers.get("Retry-After"))!;
  }
  return resp.blob();
}

/**
 * imageLink asks for a signed link to an uploaded image, valid 10 minutes,
 * for places that cannot send a header (an <img> of another origin, a
 * download); the URL is absolute.
 */
export async function imageLink(jwt: string, uploadId: string): Promise<{ url: string; expires_at: string }> {
  const r = await call<{ url: string; expires_at: string }>("GET", `/api/v1/uploads/${encodeURIComponent(uploadId)}/link`, {
    bearer: jwt,
  });
  return { ...r, url: new URL(r.url, baseUrl() + "/").toString() };
}

/** formatBytes says a size the way people read it: 512 bytes, 48 KiB, 5.2 MiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  const mib = n / (1024 * 1024);
  return `${mib < 10 ? Math.round(mib * 10) / 10 : Math.round(mib)} MiB`;
}

/**
 * checkUpload says why file would be refused without sending it (it is
 * larger than the TVM takes, or empty), or null. The type is left to the
 * server, which reads the bytes: the name and the browser's type prove nothing.
 */
export function checkUpload(file: { name: string; size: number }, max = MAX_UPLOAD_BYTES): string | null {
  if (file.size === 0) return `${file.name || "The file"} is empty.`;
  if (file.size > max) {
    const size = formatBytes(file.size);
    const limit = formatBytes(max);
    // Just over the limit rounds to the limit itself: then the size says nothing.
    return `${file.name || "The file"} is larger than ${limit}, the most an image can be${size === limit ? "" : ` (it is ${size})`}.`;
  }
  return null;
}

/** retryWait says how long Retry-After asks to wait, in words. */
function retryWait(seconds: number | null): string {
  if (seconds === null) return "Wait a minute and try again.";
  if (seconds <= 1) return "Try again in a moment.";
  if (seconds < 60) return `Try again in ${Math.ceil(seconds)} seconds.`;
  const minutes = Math.ceil(seconds / 60);
  return `Try again in ${minutes === 1 ? "a minute" : `${minutes} minutes`}.`;
}

/** uploadProblem says in words for people why an upload (or fetching an image) failed. */
export function uploadProblem(err: unknown): string {
  if (!(err instanceof ApiError)) return err instanceof Error && err.message !== "" ? err.message : "Something went wrong.";
  switch (err.code) {
    case "unsupported_type":
      return "Not an image natter takes: send a PNG, JPEG, GIF or WebP file.";
    case "too_large":
      return `The image is too large: at most ${formatBytes(MAX_UPLOAD_BYTES)} and 40 megapixels.`;
    case "corrupt_image":
      // Broken, cut short, or with bytes after the image's end (a file
      // that is also something else to another reader): all corrupt_image.
      return "The image is broken (damaged, cut short, or with data after its end) and cannot be taken.";
    case "rate_limited":
      return `Too many uploads. ${retryWait(err.retryAfter)}`;
    case "unauthorized":
    case "forbidden":
      return "You cannot share images in this room right now (your access to it has ended). Try again.";
    case "unknown_room":
    case "invalid_room":
    case "room_closed":
      return "The room has closed.";
    case "not_found":
      return "The image is gone (its room may have closed).";
    case "network":
    case "aborted":
      return err.message;
  }
  if (err.status === 413) return `The image is too large: at most ${formatBytes(MAX_UPLOAD_BYTES)} and 40 megapixels.`;
  return err.message;
}

/** uploadRetryable reports whether trying the same upload again may work. */
export function uploadRetryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return true;
  const final = ["unsupported_type", "too_large", "corrupt_image", "malformed", "unknown_room", "invalid_room", "room_closed", "aborted"];
  return !final.includes(err.code) && err.status !== 413;
}
