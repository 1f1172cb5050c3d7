import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { accountProblem, formatWait } from "./account";
import * as api from "./api";

/** answer makes fetch answer once with status, a JSON body (or none) and headers. */
function answer(status: number, body?: unknown, headers: Record<string, string> = {}) {
  const calls: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
    }),
  );
  return calls;
}

function errorBody(code: string, message = "the server's words") {
  return { error: { code, message } };
}

async function failure(p: Promise<unknown>): Promise<api.ApiError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof api.ApiError) return err;
    throw err;
  }
  throw new Error("no error");
}

beforeEach(() => {
  vi.stubGlobal("window", { location: { origin: "https://natter.test" } });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("the account routes", () => {
  it("log in with the password and code, and no Authorization", async () => {
    const calls = answer(200, { session: "s", expires_at: "2026-01-01T00:15:00Z" });
    await api.login("ada", "correct horse", "123456");
    const c = calls[0]!;
    expect(c.url).toBe("https://natter.test/api/v1/sessions");
    expect(c.init.method).toBe("POST");
    expect(JSON.parse(String(c.init.body))).toEqual({ username: "ada", password: "correct horse", totp: "123456" });
    expect((c.init.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it("log in without a password for a passwordless account", async () => {
    const calls = answer(200, { session: "s", expires_at: "" });
    await api.login("ada", null, "123456");
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ username: "ada", totp: "123456" });
  });

  it("send the session as a bearer", async () => {
    const calls = answer(200, { jwt: "j", expires_at: "", user: { id: "U", name: "Ada" }, servers: [], inbox_prefix: "" });
    await api.token("UKEY", null, ["r1"], "the-session");
    const c = calls[0]!;
    expect((c.init.headers as Record<string, string>).Authorization).toBe("Bearer the-session");
    // The token is the account's: its name comes from the account.
    expect(JSON.parse(String(c.init.body))).toEqual({ public_key: "UKEY", rooms: ["r1"] });
  });

  it("ask anonymously without a session, as before", async () => {
    const calls = answer(200, { jwt: "j", expires_at: "", user: { id: "U", name: "Ada" }, servers: [], inbox_prefix: "" });
    await api.token("UKEY", "Ada", []);
    expect((calls[0]!.init.headers as Record<string, string>).Authorization).toBeUndefined();
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ public_key: "UKEY", rooms: [], name: "Ada" });
  });

  it("take a 204 without a body for logout and deletion", async () => {
    let calls = answer(204);
    await expect(api.logout("s")).resolves.toBeUndefined();
    expect(calls[0]!.init.method).toBe("DELETE");
    expect(calls[0]!.url).toBe("https://natter.test/api/v1/sessions");
    calls = answer(204);
    await expect(api.deleteMe("s", { password: "pw" })).resolves.toBeUndefined();
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ password: "pw" });
  });

  it("use the paths and methods of docs/accounts.md", async () => {
    const profile = { id: "usr_1", username: "ada", display_name: "Ada", created_at: "", totp: { enabled: false, passwordless: false } };
    const cases: [() => Promise<unknown>, string, string][] = [
      [() => api.signup("ada", "pw", "Ada"), "POST", "/api/v1/users"],
      [() => api.refreshSession("s"), "POST", "/api/v1/sessions/refresh"],
      [() => api.me("s"), "GET", "/api/v1/users/me"],
      [() => api.updateMe("s", { display_name: "Ada" }), "PATCH", "/api/v1/users/me"],
      [() => api.startTotp("s", true), "POST", "/api/v1/users/me/totp"],
      [() => api.confirmTotp("s", "123456"), "POST", "/api/v1/users/me/totp/confirm"],
      [() => api.disableTotp("s", "123456"), "DELETE", "/api/v1/users/me/totp"],
      [() => api.publicProfile("usr_1"), "GET", "/api/v1/users/usr_1"],
    ];
    for (const [call, method, path] of cases) {
      const calls = answer(200, { ...profile, session: "s", expires_at: "" });
      await call();
      expect(calls[0]!.init.method, path).toBe(method);
      expect(calls[0]!.url).toBe("https://natter.test" + path);
    }
  });

  it("read the code, the message and Retry-After of an error", async () => {
    answer(429, errorBody("rate_limited", "too many failed logins"), { "Retry-After": "120" });
    const err = await failure(api.login("ada", "pw"));
    expect([err.status, err.code, err.message, err.retryAfter]).toEqual([429, "rate_limited", "too many failed logins", 120]);
  });

  it("name an error without a body by its status, and an unreachable server network", async () => {
    answer(502);
    expect((await failure(api.me("s"))).code).toBe("http_502");
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
    const err = await failure(api.me("s"));
    expect([err.status, err.code]).toEqual([0, "network"]);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and dates", () => {
    expect(api.parseRetryAfter("30")).toBe(30);
    expect(api.parseRetryAfter(null)).toBeNull();
    expect(api.parseRetryAfter("soon")).toBeNull();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(api.parseRetryAfter("Thu, 01 Jan 2026 00:01:00 GMT", now)).toBe(60);
  });
});

describe("accountProblem", () => {
  const err = (status: number, code: string, retryAfter: number | null = null) =>
    new api.ApiError(status, code, "the server's words", retryAfter);

  it("puts each error next to the field it is about", () => {
    expect(accountProblem(err(400, "invalid_username"), "signup").field).toBe("username");
    expect(accountProblem(err(409, "username_taken"), "signup")).toMatchObject({ field: "username", message: expect.stringMatching(/taken/) });
    expect(accountProblem(err(409, "name_taken"), "signup").field).toBe("display_name");
    expect(accountProblem(err(400, "invalid_name"), "name")).toEqual({ field: "display_name", message: "the server's words" });
    expect(accountProblem(err(400, "invalid_code"), "totp").field).toBe("code");
  });

  it("keeps the server's words for a weak password: they say which rule", () => {
    expect(accountProblem(err(400, "weak_password"), "signup")).toEqual({ field: "password", message: "the server's words" });
  });

  it("asks for the code when two-factor is on", () => {
    expect(accountProblem(err(401, "totp_required"), "login")).toMatchObject({ field: "code", needsCode: true });
  });

  it("says the same for every wrong credential at login, and names the field elsewhere", () => {
    expect(accountProblem(err(401, "invalid_credentials"), "login")).toEqual({
      field: "form",
      message: "Wrong username, password or code.",
    });
    expect(accountProblem(err(401, "invalid_credentials"), "password").field).toBe("old_password");
    expect(accountProblem(err(401, "invalid_credentials"), "delete").field).toBe("password");
  });

  it("says how long to wait when rate limited", () => {
    expect(accountProblem(err(429, "rate_limited", 840), "login").message).toBe("Too many attempts. Try again in 14 minutes.");
    expect(accountProblem(err(429, "rate_limited", 20), "login").message).toBe("Too many attempts. Try again in 20 seconds.");
    expect(accountProblem(err(429, "rate_limited"), "login").message).toMatch(/Wait a while/);
  });

  it("says when the session has ended", () => {
    expect(accountProblem(err(401, "unauthorized"), "name")).toMatchObject({ field: "form", message: expect.stringMatching(/Sign in again/) });
  });

  it("words waits", () => {
    expect(formatWait(0)).toBe("a moment");
    expect(formatWait(59)).toBe("59 seconds");
    expect(formatWait(60)).toBe("a minute");
    expect(formatWait(61)).toBe("2 minutes");
  });
});
