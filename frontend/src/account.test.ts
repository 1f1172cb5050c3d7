import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Account, type AccountApi, sessionEnded, sessionRefreshDelay, SESSION_STORAGE_KEY } from "./account";
import { ApiError } from "./api";
import type { Profile, SessionGrant } from "./types";

const MIN = 60_000;

function jwtWith(claims: object): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${b64({ typ: "JWT", alg: "HS256" })}.${b64(claims)}.c2ln`;
}

const profile: Profile = {
  id: "usr_abc",
  username: "ada",
  display_name: "Ada Lovelace",
  created_at: "2026-01-01T00:00:00Z",
  totp: { enabled: false, passwordless: false },
};

let issued = 0;
/** grant is a 15-minute session, as the server gives (iat and exp on its own clock). */
function grant(): SessionGrant {
  issued++;
  const iat = 1_000_000 + issued;
  return { session: jwtWith({ sub: profile.id, iat, exp: iat + 900, n: issued }), expires_at: "", user: profile };
}

function memoryStore() {
  const m = new Map<string, string>();
  return {
    m,
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

function fakeApi(): AccountApi & { [K in keyof AccountApi]: ReturnType<typeof vi.fn> } {
  const fail = () => Promise.reject(new Error("not expected"));
  return {
    login: vi.fn(async () => grant()),
    signup: vi.fn(async () => profile),
    refreshSession: vi.fn(async () => grant()),
    logout: vi.fn(async () => undefined),
    me: vi.fn(async () => profile),
    updateMe: vi.fn(fail),
    deleteMe: vi.fn(fail),
    startTotp: vi.fn(fail),
    confirmTotp: vi.fn(fail),
    disableTotp: vi.fn(fail),
  } as never;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(Date.parse("2026-06-01T12:00:00Z"));
});

afterEach(() => {
  vi.useRealTimers();
});

describe("sessionRefreshDelay", () => {
  it("refreshes a 15-minute session after 12 minutes", () => {
    expect(sessionRefreshDelay(15 * MIN)).toBe(12 * MIN);
  });

  it("keeps at least a minute of margin", () => {
    expect(sessionRefreshDelay(4 * MIN)).toBe(3 * MIN);
    expect(sessionRefreshDelay(90_000)).toBe(30_000);
  });

  it("refreshes at once with less than a minute left, or when the life is unknown", () => {
    expect(sessionRefreshDelay(30_000)).toBe(0);
    expect(sessionRefreshDelay(0)).toBe(0);
    expect(sessionRefreshDelay(Number.NaN)).toBe(0);
  });
});

describe("Account", () => {
  it("refreshes the session about 12 minutes after logging in, and again after each refresh", async () => {
    const api = fakeApi();
    const store = memoryStore();
    const a = new Account(store, api);
    await a.login("ada", "correct horse battery");
    expect(a.getState().profile).toEqual(profile);
    const first = JSON.parse(store.m.get(SESSION_STORAGE_KEY)!).session as string;
    // 899 s of life (a second may be gone already): refreshed at 80% of it.
    await vi.advanceTimersByTimeAsync(0.8 * 899_000 - 1_000);
    expect(api.refreshSession).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(api.refreshSession).toHaveBeenCalledTimes(1);
    expect(api.refreshSession).toHaveBeenLastCalledWith(first);
    const second = JSON.parse(store.m.get(SESSION_STORAGE_KEY)!).session as string;
    expect(second).not.toBe(first);
    expect(await a.bearer()).toBe(second);
    await vi.advanceTimersByTimeAsync(0.8 * 899_000);
    expect(api.refreshSession).toHaveBeenCalledTimes(2);
    expect(api.refreshSession).toHaveBeenLastCalledWith(second);
  });

  it("signs out when the refresh is refused with 401", async () => {
    const api = fakeApi();
    const store = memoryStore();
    const a = new Account(store, api);
    const changes: boolean[] = [];
    a.subscribe((identity) => changes.push(identity));
    await a.login("ada", "correct horse battery");
    api.refreshSession.mockRejectedValueOnce(new ApiError(401, "unauthorized", "expired"));
    await vi.advanceTimersByTimeAsync(13 * MIN);
    expect(a.getState().profile).toBeNull();
    expect(a.getState().notice).toMatch(/Sign in again/);
    expect(await a.bearer()).toBeNull();
    expect(store.m.has(SESSION_STORAGE_KEY)).toBe(false);
    expect(changes).toEqual([true, true]);
  });

  it("tries a refresh that failed on the network again before the session expires", async () => {
    const api = fakeApi();
    const a = new Account(memoryStore(), api);
    await a.login("ada", "correct horse battery");
    api.refreshSession.mockRejectedValueOnce(new ApiError(0, "network", "offline"));
    await vi.advanceTimersByTimeAsync(0.8 * 899_000 + 1);
    expect(api.refreshSession).toHaveBeenCalledTimes(1);
    // Full jitter over 500 ms at first, never past half of what is left.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(api.refreshSession).toHaveBeenCalledTimes(2);
    expect(a.getState().profile).toEqual(profile);
  });

  it("takes up a kept session after a reload and refreshes it in time", async () => {
    const api = fakeApi();
    const store = memoryStore();
    store.setItem(
      SESSION_STORAGE_KEY,
      JSON.stringify({ session: "kept", expiresAt: Date.now() + 5 * MIN, profile }),
    );
    const a = new Account(store, api);
    expect(a.getState().profile).toEqual(profile);
    a.start();
    await vi.advanceTimersByTimeAsync(4 * MIN - 1);
    expect(api.refreshSession).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(api.refreshSession).toHaveBeenCalledWith("kept");
  });

  it("forgets a kept session that has expired", () => {
    const store = memoryStore();
    store.setItem(SESSION_STORAGE_KEY, JSON.stringify({ session: "old", expiresAt: Date.now() - 1, profile }));
    const a = new Account(store, fakeApi());
    expect(a.getState().profile).toBeNull();
    expect(store.m.has(SESSION_STORAGE_KEY)).toBe(false);
  });

  it("refreshes a session about to expire before handing it out", async () => {
    const api = fakeApi();
    const store = memoryStore();
    store.setItem(SESSION_STORAGE_KEY, JSON.stringify({ session: "nearly", expiresAt: Date.now() + 2_000, profile }));
    const a = new Account(store, api);
    const s = await a.bearer();
    expect(api.refreshSession).toHaveBeenCalledWith("nearly");
    expect(s).not.toBe("nearly");
  });

  it("logs out locally even when the server cannot be reached", async () => {
    const api = fakeApi();
    const a = new Account(memoryStore(), api);
    await a.login("ada", "correct horse battery");
    api.logout.mockRejectedValueOnce(new ApiError(0, "network", "offline"));
    await a.logout();
    expect(a.getState()).toEqual({ profile: null, notice: null });
    await vi.advanceTimersByTimeAsync(20 * MIN);
    expect(api.refreshSession).not.toHaveBeenCalled();
  });
});

describe("sessionEnded", () => {
  it("is a 401 that is not about what the person typed", () => {
    expect(sessionEnded(new ApiError(401, "unauthorized", ""))).toBe(true);
    expect(sessionEnded(new ApiError(401, "invalid_credentials", ""))).toBe(false);
    expect(sessionEnded(new ApiError(401, "totp_required", ""))).toBe(false);
    expect(sessionEnded(new ApiError(403, "forbidden", ""))).toBe(false);
  });
});
