import type { TokenResponse } from "./types";

/**
 * refreshDelay is how long after receiving a token of the given lifetime
 * the client asks for the next one: at 80% of its life, and at least a
 * second before it expires, so a 1 h token is renewed after 48 min and a
 * 5 s one after 4 s. Very short tokens are renewed halfway.
 */
export function refreshDelay(lifetimeMs: number): number {
  if (!(lifetimeMs > 0)) return 0;
  const delay = Math.min(lifetimeMs * 0.8, lifetimeMs - 1000);
  return Math.max(delay, lifetimeMs / 2);
}

/** The claims of a JWT this client reads: issue and expiry times in seconds. */
export interface JwtTimes {
  iat?: number;
  exp?: number;
}

/** decodeJwtTimes reads iat and exp from a JWT without verifying it. */
export function decodeJwtTimes(jwt: string): JwtTimes {
  const part = jwt.split(".")[1];
  if (part === undefined) return {};
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json) as Record<string, unknown>;
    const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
    return { iat: num(claims.iat), exp: num(claims.exp) };
  } catch {
    return {};
  }
}

/**
 * tokenLifetime is how long a token just received stays valid, in
 * milliseconds. It comes from the JWT's own iat and exp, both on the
 * server's clock, so a client whose clock is off still renews in time; as
 * both are whole seconds, cut down from the moment of issue, a second of
 * it may already be gone, and is not counted. expires_at against the local
 * clock is the fallback.
 */
export function tokenLifetime(tok: Pick<TokenResponse, "jwt" | "expires_at">, now = Date.now()): number {
  const { iat, exp } = decodeJwtTimes(tok.jwt);
  if (iat !== undefined && exp !== undefined && exp - iat > 1) return (exp - iat - 1) * 1000;
  const expires = Date.parse(tok.expires_at);
  return Number.isNaN(expires) ? 0 : Math.max(0, expires - now);
}

/**
 * Backoff for retrying a failed refresh: full jitter over an exponential
 * ceiling, never past what is left of the current token when that is
 * still positive.
 */
export function retryDelay(attempt: number, remainingMs: number, random = Math.random): number {
  const ceiling = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  const d = 250 + random() * ceiling;
  return remainingMs > 500 ? Math.min(d, remainingMs / 2) : d;
}
