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

/** FakeXHR stands in for XMLHttpRequest: it records the request and answers when told. */
class FakeXHR {
  static last: FakeXHR | null = null;
  method = "";
  url = "";
  headers: Record<string, string> = {};
  body: unknown;
  status = 0;
  responseText = "";
  responseType = "";
  responseHeaders: Record<string, string> = {};
  aborted = false;
  upload: { onprogress: ((e: { lengthComputable: boolean; loaded: number; total: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  ontimeout: (() => void) | null = null;
  onabort: (() => void) | null = null;

  constructor() {
    FakeXHR.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  getResponseHeader(name: string): string | null {
    return this.responseHeaders[name] ?? null;
  }
  send(body: unknown) {
    this.body = body;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  respond(status: number, body: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.responseText = typeof body === "string" ? body : JSON.stringify(body);
    this.responseHeaders = headers;
    this.onload?.();
  }
}

describe("uploading an image", () => {
  beforeEach(() => {
    vi.stubGlobal("XMLHttpRequest", FakeXHR);
    FakeXHR.last = null;
  });

  const ok = { upload_id: "upl_AAAA", url: "/api/v1/uploads/upl_AAAA", type: "image/png", width: 300, height: 150, size: 1234 };

  it("posts one multipart part named file with the room's token, and reports progress", async () => {
    const progress: [number, number][] = [];
    const file = new File([new Uint8Array([1, 2, 3])], "cat.png", { type: "image/png" });
    const req = api.uploadImage("room-jwt", "neon-q3x7mz4b", file, (sent, total) => progress.push([sent, total]));
    const x = FakeXHR.last!;
    expect(x.method).toBe("POST");
    expect(x.url).toBe("https://natter.test/api/v1/rooms/neon-q3x7mz4b/uploads");
    expect(x.headers.Authorization).toBe("Bearer room-jwt");
    // No Content-Type of our own: the browser sets the multipart boundary.
    expect(x.headers["Content-Type"]).toBeUndefined();
    const form = x.body as FormData;
    expect([...form.keys()]).toEqual(["file"]);
    expect((form.get("file") as File).name).toBe("cat.png");
    x.upload.onprogress!({ lengthComputable: true, loaded: 10, total: 40 });
    x.upload.onprogress!({ lengthComputable: false, loaded: 20, total: 0 });
    x.respond(201, ok);
    await expect(req.done).resolves.toEqual(ok);
    expect(progress).toEqual([[10, 40]]);
  });

  it("turns error answers into ApiError with the code and Retry-After", async () => {
    const req = api.uploadImage("jwt", "r", new Blob(["x"]));
    FakeXHR.last!.respond(429, errorBody("rate_limited"), { "Retry-After": "42" });
    const err = await failure(req.done);
    expect([err.status, err.code, err.retryAfter]).toEqual([429, "rate_limited", 42]);
  });

  it("says network when the request fails, aborted when called off", async () => {
    let req = api.uploadImage("jwt", "r", new Blob(["x"]));
    FakeXHR.last!.onerror!();
    expect((await failure(req.done)).code).toBe("network");
    req = api.uploadImage("jwt", "r", new Blob(["x"]));
    req.abort();
    expect((await failure(req.done)).code).toBe("aborted");
  });

  it("refuses a success without an upload id", async () => {
    const req = api.uploadImage("jwt", "r", new Blob(["x"]));
    FakeXHR.last!.respond(201, "<html>");
    expect((await failure(req.done)).code).toBe("malformed");
  });
});

describe("fetching an image", () => {
  it("sends the room's token and returns the bytes", async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string, init: RequestInit) => {
        calls.push({ url, init });
        return new Response(new Uint8Array([137, 80, 78, 71]), { status: 200, headers: { "Content-Type": "image/png" } });
      }),
    );
    const blob = await api.fetchImage("room-jwt", "upl_AAAA");
    expect(calls[0]!.url).toBe("https://natter.test/api/v1/uploads/upl_AAAA");
    expect((calls[0]!.init.headers as Record<string, string>).Authorization).toBe("Bearer room-jwt");
    expect(blob.type).toBe("image/png");
    expect(new Uint8Array(await blob.arrayBuffer())).toEqual(new Uint8Array([137, 80, 78, 71]));
  });

  it("maps refusals", async () => {
    answer(403, errorBody("forbidden"));
    expect((await failure(api.fetchImage("jwt", "upl_AAAA"))).code).toBe("forbidden");
  });

  it("makes the signed link absolute", async () => {
    const calls = answer(200, { url: "/api/v1/uploads/upl_AAAA?exp=1&sig=abc", expires_at: "2026-01-01T00:10:00Z" });
    const link = await api.imageLink("room-jwt", "upl_AAAA");
    expect(calls[0]!.url).toBe("https://natter.test/api/v1/uploads/upl_AAAA/link");
    expect(link.url).toBe("https://natter.test/api/v1/uploads/upl_AAAA?exp=1&sig=abc");
  });
});

describe("upload errors in words", () => {
  const refusal = (status: number, code: string, retryAfter: number | null = null) =>
    api.uploadProblem(new api.ApiError(status, code, "the server's words", retryAfter));

  it("say why a file was refused", () => {
    expect(refusal(415, "unsupported_type")).toBe("Not an image natter takes: send a PNG, JPEG, GIF or WebP file.");
    expect(refusal(413, "too_large")).toBe("The image is too large: at most 5 MiB and 40 megapixels.");
    expect(refusal(400, "corrupt_image")).toBe(
      "The image is broken (damaged, cut short, or with data after its end) and cannot be taken.",
    );
    expect(refusal(403, "forbidden")).toMatch(/cannot share images in this room/);
    expect(refusal(404, "unknown_room")).toBe("The room has closed.");
    expect(refusal(410, "room_closed")).toBe("The room has closed.");
    // A proxy's 413 without natter's body is still about the size.
    expect(refusal(413, "http_413")).toMatch(/too large/);
    expect(refusal(500, "internal")).toBe("the server's words");
  });

  it("say how long to wait when there were too many uploads", () => {
    expect(refusal(429, "rate_limited", 42)).toBe("Too many uploads. Try again in 42 seconds.");
    expect(refusal(429, "rate_limited", 61)).toBe("Too many uploads. Try again in 2 minutes.");
    expect(refusal(429, "rate_limited", 1)).toBe("Too many uploads. Try again in a moment.");
    expect(refusal(429, "rate_limited")).toBe("Too many uploads. Wait a minute and try again.");
  });

  it("offer trying again only where it can help", () => {
    const e = (status: number, code: string) => new api.ApiError(status, code, "");
    expect(api.uploadRetryable(e(429, "rate_limited"))).toBe(true);
    expect(api.uploadRetryable(e(0, "network"))).toBe(true);
    expect(api.uploadRetryable(e(403, "forbidden"))).toBe(true);
    expect(api.uploadRetryable(e(415, "unsupported_type"))).toBe(false);
    expect(api.uploadRetryable(e(413, "too_large"))).toBe(false);
    expect(api.uploadRetryable(e(400, "corrupt_image"))).toBe(false);
    expect(api.uploadRetryable(e(410, "room_closed"))).toBe(false);
  });

  it("check the size before sending a byte, and leave the type to the server", () => {
    expect(api.checkUpload({ name: "a.png", size: 5 * 1024 * 1024 })).toBeNull();
    expect(api.checkUpload({ name: "a.png", size: 5 * 1024 * 1024 + 1 })).toBe("a.png is larger than 5 MiB, the most an image can be.");
    expect(api.checkUpload({ name: "big.jpg", size: 12 * 1024 * 1024 })).toBe("big.jpg is larger than 5 MiB, the most an image can be (it is 12 MiB).");
    expect(api.checkUpload({ name: "empty.png", size: 0 })).toBe("empty.png is empty.");
    expect(api.checkUpload({ name: "page.html", size: 100 })).toBeNull();
  });

  it("write sizes for people", () => {
    expect(api.formatBytes(512)).toBe("512 bytes");
    expect(api.formatBytes(48 * 1024)).toBe("48 KiB");
    expect(api.formatBytes(5.24 * 1024 * 1024)).toBe("5.2 MiB");
  });
});

describe("creating rooms", () => {
  const room = { id: "quiet-otter-42", name: "Otters", created_at: "", expires_at: "", members: 0 };

  it("asks for a sealed room with sealed: true, and nothing of a key", async () => {
    const calls = answer(201, { ...room, sealed: true });
    const r = await api.createRoom("the-jwt", "Otters", true);
    expect(r.sealed).toBe(true);
    const c = calls[0]!;
    expect(c.url).toBe("https://natter.test/api/v1/rooms");
    expect(JSON.parse(String(c.init.body))).toEqual({ name: "Otters", sealed: true });
    expect((c.init.headers as Record<string, string>).Authorization).toBe("Bearer the-jwt");
  });

  it("leaves sealed out of an ordinary room's request", async () => {
    const calls = answer(201, room);
    await api.createRoom("the-jwt", "");
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({});
  });
});
