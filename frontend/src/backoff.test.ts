import { describe, expect, it } from "vitest";
import { backoff, MAX_BACKOFF_MS } from "./backoff";

describe("backoff", () => {
  it.each([
    [1, 1_000, 2_000],
    [2, 1_000, 4_000],
    [3, 1_000, 8_000],
    [5, 1_000, MAX_BACKOFF_MS],
    [40, 1_000, MAX_BACKOFF_MS],
  ])("attempt %i waits between %i and %i ms", (n, lo, hi) => {
    expect(backoff(n, 1_000, 1_000, () => 0)).toBe(lo);
    expect(backoff(n, 1_000, 1_000, () => 0.999999)).toBeCloseTo(hi, -1);
  });

  it("spreads the waits over the whole range", () => {
    const waits = Array.from({ length: 2000 }, () => backoff(4, 1_000, 1_000));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1_000);
    expect(Math.max(...waits)).toBeLessThanOrEqual(16_000);
    expect(Math.max(...waits)).toBeGreaterThan(12_000);
  });
});
