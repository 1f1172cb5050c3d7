import { describe, expect, it } from "vitest";

import { codePoints, initials, linkify, newMessageId } from "./text";

describe("codePoints", () => {
  it("counts code points, not UTF-16 units or bytes", () => {
    expect(codePoints("hello")).toBe(5);
    expect(codePoints("👋")).toBe(1);
    expect(codePoints("é世界")).toBe(3);
    expect(codePoints("x".repeat(1001))).toBe(1001);
  });
});

describe("newMessageId", () => {
  it("is a valid, random message id", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const id = newMessageId();
      expect(id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
      ids.add(id);
    }
    expect(ids.size).toBe(200);
  });
});

describe("linkify", () => {
  it("makes http and https URLs links and leaves the rest as text", () => {
    expect(linkify("see https://example.com/a?b=1 and http://x.org.")).toEqual([
      { text: "see " },
      { text: "https://example.com/a?b=1", href: "https://example.com/a?b=1" },
      { text: " and " },
      { text: "http://x.org", href: "http://x.org/" },
      { text: "." },
    ]);
  });

  it("keeps balanced parentheses and drops a closing one around the link", () => {
    expect(linkify("(https://en.wikipedia.org/wiki/Otter_(disambiguation))")).toEqual([
      { text: "(" },
      {
        text: "https://en.wikipedia.org/wiki/Otter_(disambiguation)",
        href: "https://en.wikipedia.org/wiki/Otter_(disambiguation)",
      },
      { text: ")" },
    ]);
  });

  it("never links other schemes", () => {
    for (const t of ["javascript:alert(1)", "data:text/html,<b>x</b>", "<img src=x onerror=alert(1)>", "ftp://x"]) {
      expect(linkify(t)).toEqual([{ text: t }]);
    }
  });

  it("stops a link at markup characters", () => {
    expect(linkify('https://a.b/"><script>')).toEqual([
      { text: "https://a.b/", href: "https://a.b/" },
      { text: '"><script>' },
    ]);
  });

  it("returns nothing for empty text", () => {
    expect(linkify("")).toEqual([]);
  });
});

describe("initials", () => {
  it("takes the first letters of the first and last words", () => {
    expect(initials("Brave Otter")).toBe("BO");
    expect(initials("Ada (2)")).toBe("A");
    expect(initials("ángel de la guarda")).toBe("ÁG");
    expect(initials("  ")).toBe("?");
  });
});
