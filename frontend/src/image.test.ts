import { describe, expect, it } from "vitest";

import { thumbBox } from "./image";

describe("thumbBox", () => {
  it("keeps the aspect ratio within the box", () => {
    expect(thumbBox(300, 150)).toEqual({ width: 300, height: 150, cropped: false });
    expect(thumbBox(1200, 800)).toEqual({ width: 320, height: 213, cropped: false });
    expect(thumbBox(800, 1200)).toEqual({ width: 213, height: 320, cropped: false });
    expect(thumbBox(4000, 4000)).toEqual({ width: 320, height: 320, cropped: false });
  });

  it("never enlarges a small image", () => {
    expect(thumbBox(64, 32)).toEqual({ width: 64, height: 32, cropped: false });
    expect(thumbBox(16, 16)).toEqual({ width: 16, height: 16, cropped: false });
  });

  it("gives a thin image a side it can be clicked on, cropped", () => {
    expect(thumbBox(10000, 100)).toEqual({ width: 320, height: 48, cropped: true });
    expect(thumbBox(100, 10000)).toEqual({ width: 48, height: 320, cropped: true });
    // Thin, but never more than the image has.
    expect(thumbBox(4000, 20)).toEqual({ width: 320, height: 20, cropped: true });
  });

  it("falls back to 4:3 without usable dimensions", () => {
    for (const [w, h] of [
      [0, 0],
      [-1, 100],
      [100, Number.NaN],
      [Number.POSITIVE_INFINITY, 10],
    ]) {
      expect(thumbBox(w!, h!)).toEqual({ width: 320, height: 240, cropped: false });
    }
  });

  it("fits another box", () => {
    expect(thumbBox(300, 150, 100)).toEqual({ width: 100, height: 50, cropped: false });
  });
});
