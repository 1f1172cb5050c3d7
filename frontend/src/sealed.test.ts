import { describe, expect, it } from "vitest";

import {
  associatedData,
  decrypt,
  encrypt,
  encryptWithNonce,
  exportRoomKey,
  generateRoomKey,
  importRoomKey,
  keepRoomKey,
  keyFromFragment,
  roomKey,
  storageKey,
  validSealedText,
  type KeyStore,
} from "./sealed";
import { base64url, fromBase64url } from "./sign";
import shared from "./testdata/sealed.json";

const room = "quiet-otter-42";
const sender = "UB7ZJ6LBRRWVNS6FG2RVKC3ZOBZ3BBUBSW6TF3OGEJ5I4PGAN2PXBB4M";
const id = "m-0001";

function memoryStore(): KeyStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
}

describe("sealed messages", () => {
  it("encrypts and decrypts a text", async () => {
    const key = await generateRoomKey();
    const text = "hello, sealed world: é ✓ 🦦\nsecond line";
    const ct = await encrypt(key, room, sender, id, text);
    expect(ct).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(ct).not.toContain("hello");
    expect(fromBase64url(ct)!.length).toBe(12 + new TextEncoder().encode(text).length + 16);
    expect(await decrypt(key, room, sender, id, ct)).toBe(text);
  });

  it("uses a fresh nonce for every message", async () => {
    const key = await generateRoomKey();
    const a = await encrypt(key, room, sender, id, "same");
    const b = await encrypt(key, room, sender, id, "same");
    expect(a).not.toBe(b);
    expect(a.slice(0, 16)).not.toBe(b.slice(0, 16));
  });

  it("does not decrypt with another key", async () => {
    const ct = await encrypt(await generateRoomKey(), room, sender, id, "secret");
    expect(await decrypt(await generateRoomKey(), room, sender, id, ct)).toBeNull();
  });

  it("does not decrypt for another room, sender or message id", async () => {
    const key = await generateRoomKey();
    const ct = await encrypt(key, room, sender, id, "secret");
    expect(await decrypt(key, "other-room", sender, id, ct)).toBeNull();
    expect(await decrypt(key, room, "UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id, ct)).toBeNull();
    expect(await decrypt(key, room, sender, "m-0002", ct)).toBeNull();
  });

  it("does not decrypt a tampered ciphertext", async () => {
    const key = await generateRoomKey();
    const bytes = fromBase64url(await encrypt(key, room, sender, id, "secret"))!;
    for (const at of [0, 12, bytes.length - 1]) {
      const t = bytes.slice();
      t[at]! ^= 1;
      expect(await decrypt(key, room, sender, id, base64url(t))).toBeNull();
    }
    expect(await decrypt(key, room, sender, id, base64url(bytes.slice(0, bytes.length - 1)))).toBeNull();
  });

  it("does not decrypt malformed input, and never throws", async () => {
    const key = await generateRoomKey();
    for (const ct of ["", "short", "not base64url!", "A".repeat(37) + "="]) {
      expect(await decrypt(key, room, sender, id, ct)).toBeNull();
    }
  });

  it("binds the associated data to natter/v1/sealed, room, sender and id", () => {
    expect(new TextDecoder().decode(associatedData(room, sender, id))).toBe(`natter/v1/sealed\n${room}\n${sender}\n${id}`);
  });

  it("encrypts to the same bytes with a fixed nonce", async () => {
    const key = (await importRoomKey(base64url(new Uint8Array(32).fill(7))))!;
    const nonce = new Uint8Array(12).fill(9);
    const a = await encryptWithNonce(key, nonce, room, sender, id, "fixed");
    expect(await encryptWithNonce(key, nonce, room, sender, id, "fixed")).toBe(a);
    expect(a.startsWith(base64url(nonce))).toBe(true);
  });
});

describe("decrypted texts", () => {
  it("follow a text message's rules", () => {
    expect(validSealedText("hello")).toBe(true);
    expect(validSealedText("line one\nline two\ttab ✓")).toBe(true);
    expect(validSealedText("")).toBe(false);
    expect(validSealedText("bell\u0007")).toBe(false);
    expect(validSealedText("escape \u001b[31m red")).toBe(false);
    expect(validSealedText("carriage\rreturn")).toBe(false);
    expect(validSealedText("del\u007f")).toBe(false);
    expect(validSealedText("c1\u0085")).toBe(false);
  });
});

describe("room keys", () => {
  it("exports 32 bytes as base64url without padding, and imports them back", async () => {
    const key = await generateRoomKey();
    const encoded = await exportRoomKey(key);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const again = (await importRoomKey(encoded))!;
    const ct = await encrypt(key, room, sender, id, "both ways");
    expect(await decrypt(again, room, sender, id, ct)).toBe("both ways");
    expect(await exportRoomKey(again)).toBe(encoded);
  });

  it("refuses what is not a 256-bit key", async () => {
    expect(await importRoomKey("")).toBeNull();
    expect(await importRoomKey(base64url(new Uint8Array(16)))).toBeNull();
    expect(await importRoomKey(base64url(new Uint8Array(33)))).toBeNull();
    expect(await importRoomKey("not a key at all, not at all, not at all!!")).toBeNull();
    expect(await importRoomKey(base64url(new Uint8Array(32)) + "==")).toBeNull();
  });

  it("reads k from the fragment", () => {
    expect(keyFromFragment("#k=abc")).toBe("abc");
    expect(keyFromFragment("#x=1&k=abc")).toBe("abc");
    expect(keyFromFragment("")).toBeNull();
    expect(keyFromFragment("#")).toBeNull();
    expect(keyFromFragment("#k=")).toBeNull();
  });

  it("keeps a fragment's key for the room and finds it again without the fragment", async () => {
    const store = memoryStore();
    const encoded = await exportRoomKey(await generateRoomKey());
    expect(await roomKey(room, "", store)).toBeNull();
    expect(await roomKey(room, "#k=" + encoded, store)).not.toBeNull();
    expect(store.data.get(storageKey(room))).toBe(encoded);
    const kept = (await roomKey(room, "", store))!;
    expect(await exportRoomKey(kept)).toBe(encoded);
    expect(await roomKey("another-room", "", store)).toBeNull();
  });

  it("prefers the fragment's key to the one kept, and keeps no broken key", async () => {
    const store = memoryStore();
    const first = await exportRoomKey(await generateRoomKey());
    const second = await exportRoomKey(await generateRoomKey());
    keepRoomKey(room, first, store);
    expect(await exportRoomKey((await roomKey(room, "#k=" + second, store))!)).toBe(second);
    expect(store.data.get(storageKey(room))).toBe(second);
    expect(await roomKey(room, "#k=broken", store)).toBeNull();
    expect(store.data.get(storageKey(room))).toBe(second);
  });
});

// sealed.json is written by the Go package sealed: a browser and a Go
// client in one sealed room read each other's messages.
describe("sealed messages compatible with the Go implementation", () => {
  it("has vectors", () => {
    expect(shared.vectors.length).toBeGreaterThan(0);
  });

  for (const v of shared.vectors) {
    it(`decrypts the Go ciphertext of ${JSON.stringify(v.text)}`, async () => {
      const key = (await importRoomKey(v.key))!;
      expect(key).not.toBeNull();
      expect(await decrypt(key, v.room, v.sender, v.id, v.ct)).toBe(v.text);
    });

    it(`encrypts ${JSON.stringify(v.text)} to the same bytes with the nonce fixed`, async () => {
      const key = (await importRoomKey(v.key))!;
      expect(await encryptWithNonce(key, fromBase64url(v.nonce)!, v.room, v.sender, v.id, v.text)).toBe(v.ct);
    });

    it(`does not decrypt the Go ciphertext of ${JSON.stringify(v.text)} for another message id`, async () => {
      const key = (await importRoomKey(v.key))!;
      expect(await decrypt(key, v.room, v.sender, v.id + "x", v.ct)).toBeNull();
    });
  }
});
