import { describe, expect, it } from "vitest";

import { pickAttachment, tooLongText, typingText } from "./Room";

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

describe("pickAttachment", () => {
  const MiB = 1024 * 1024;

  it("attaches the first file, and says so when there were more", () => {
    expect(pickAttachment([{ name: "a.png", size: 100 }])).toEqual({ index: 0, error: null });
    expect(pickAttachment([{ name: "a.png", size: 100 }, { name: "b.png", size: 100 }])).toEqual({
      index: 0,
      error: "One image at a time: the first one is attached.",
    });
  });

  it("refuses a file larger than the server takes before sending it", () => {
    expect(pickAttachment([{ name: "huge.jpg", size: 6 * MiB }])).toEqual({
      index: -1,
      error: "huge.jpg is larger than 5 MiB, the most an image can be (it is 6 MiB).",
    });
  });

  it("does nothing without files", () => {
    expect(pickAttachment([])).toEqual({ index: -1, error: null });
  });
});
