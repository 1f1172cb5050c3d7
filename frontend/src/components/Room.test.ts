import { describe, expect, it } from "vitest";

import { tooLongText, typingText } from "./Room";

describe("typingText", () => {
  const members = [
    { id: "U1", name: "Ada" },
    { id: "U2", name: "Grace" },
    { id: "U3", name: "Linus" },
  ];

  it("names who is typing from the member list", () => {
    expect(typingText([], members)).toBe("");
    expect(typingText(["U1"], members)).toBe("Ada is typing…");
    expect(typingText(["U1", "U2"], members)).toBe("Ada and Grace are typing…");
    expect(typingText(["U1", "U2", "U3"], members)).toBe("Several people are typing…");
  });

  it("leaves out typists who are not members (any more)", () => {
    expect(typingText(["U9"], members)).toBe("");
    expect(typingText(["U9", "U2"], members)).toBe("Grace is typing…");
  });
});

describe("tooLongText", () => {
  it("says how long the message is and what the limit is", () => {
    expect(tooLongText(1001)).toBe("Too long: 1001 of 1000 characters");
  });
});
