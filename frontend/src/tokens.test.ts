import { describe, expect, it } from "vitest";

import { decodeJwtTimes, refreshDelay, retryDelay, tokenLifetime } from "./tokens";

function jwtWith(claims: object): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `${b64({ typ: "JWT", alg: "ed25519-nkey" })}.${b64(claims)}.c2ln`;
}

describe("refreshDelay", () => {
  it("renews a 1 h token at 80% of its life", () => {
    expect(refreshDelay(3_600_000)).toBe(2_880_000);
  });

  it("renews a 5 s token a second before it expires", () => {
    expect(refreshDelay(5_000)).toBe(4_000);
  });

  it("keeps a second of margin where 80% would leave less", () => {
    expect(refreshDelay(3_000)).toBe(2_000);
    expect(3_000 - refreshDelay(3_000)).toBeGreaterThanOrEqual(1_000);
  });

  it("renews very short tokens halfway", () => {
    expect(refreshDelay(1_000)).toBe(500);
  });

  it("renews at once when the lifetime is unknown", () => {
    expect(refreshDelay(0)).toBe(0);
    expect(refreshDelay(Number.NaN)).toBe(0);
  });
});

describe("tokenLifetime", () => {
  it("comes from the JWT's own iat and exp, whatever the local clock says", () => {
    // Whole seconds cut down from the moment of issue: up to a second of
    // the token's life may be gone when it arrives.
    const jwt = jwtWith({ iat: 1_000, exp: 1_005 });
    expect(tokenLifetime({ jwt, expires_at: "1970-01-01T00:16:45Z" }, 99_999_999_999)).toBe(4_000);
    expect(tokenLifetime({ jwt: jwtWith({ iat: 1_000, exp: 4_600 }), expires_at: "" })).toBe(3_599_000);
  });

  it("renews a 5 s token at least a second before it can expire", () => {
    // Issued at 10.999 s: iat 10, exp 15, so 4.001 s of life remain.
    const life = tokenLifetime({ jwt: jwtWith({ iat: 10, exp: 15 }), expires_at: "" });
    expect(4_001 - refreshDelay(life)).toBeGreaterThanOrEqual(1_000);
    // Issued at 10.0 s: 5 s remain; renewed after 3 s.
    expect(refreshDelay(life)).toBe(3_000);
  });

  it("renews a 1 h token after about 48 minutes", () => {
    const life = tokenLifetime({ jwt: jwtWith({ iat: 0, exp: 3_600 }), expires_at: "" });
    expect(refreshDelay(life)).toBeCloseTo(0.8 * 3_599_000);
  });

  it("falls back on expires_at", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(tokenLifetime({ jwt: "x", expires_at: "2026-01-01T01:00:00Z" }, now)).toBe(3_600_000);
    expect(tokenLifetime({ jwt: "x", expires_at: "nonsense" }, now)).toBe(0);
  });

  it("reads base64url claims", () => {
    expect(decodeJwtTimes(jwtWith({ iat: 1, exp: 2, name: "??>>" }))).toEqual({ iat: 1, exp: 2 });
    expect(decodeJwtTimes("garbage")).toEqual({});
  });
});

describe("retryDelay", () => {
  it("grows, stays bounded, and never passes half of what is left", () => {
    expect(retryDelay(0, 0, () => 1)).toBe(750);
    expect(retryDelay(3, 0, () => 1)).toBe(4_250);
    expect(retryDelay(30, 0, () => 1)).toBe(30_250);
    expect(retryDelay(30, 2_000, () => 1)).toBe(1_000);
  });
});
