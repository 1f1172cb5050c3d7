// The TVM's HTTP API. With nats.ts, the only module that reaches the network.
import type { Room, TokenResponse } from "./types";

/** ApiError is an error answer of the TVM, or status 0 when it could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The TVM's base URL: NEXT_PUBLIC_AUTH_BASE_URL at build time, or this page's origin. */
export function baseUrl(): string {
  const configured = (import.meta.env.NEXT_PUBLIC_AUTH_BASE_URL as string | undefined)?.trim();
  return (configured || window.location.origin).replace(/\/+$/, "");
}

async function call<T>(method: string, path: string, opts: { body?: unknown; bearer?: string } = {}): Promise<T> {
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
    throw new ApiError(resp.status, code, message);
  }
  if (data === undefined) throw new ApiError(resp.status, "malformed", "The server sent an unreadable answer.");
  return data as T;
}

/** token asks for a token for rooms; no name gets a random friendly one. */
export function token(publicKey: string, name: string | null, rooms: string[]): Promise<TokenResponse> {
  const body: Record<string, unknown> = { public_key: publicKey, rooms };
  if (name !== null && name !== "") body.name = name;
  return call<TokenResponse>("POST", "/api/v1/token", { body });
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
