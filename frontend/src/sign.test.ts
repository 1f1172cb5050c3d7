import { fromSeed } from "@nats-io/nkeys";
import { describe, expect, it } from "vitest";

import {
  base64url,
  fromBase64url,
  naclVerify,
  rawPublicKey,
  signedImagePayload,
  signImage,
  signMessage,
  verifyImage,
  verifyMessage,
  webCryptoVerify,
} from "./sign";
import vectors from "./testdata/signatures.json";

// signatures.json was written by a Go program with github.com/nats-io/nkeys,
// natter.SignedPayload and gateway.VerifySignature: what the gateway accepts.
const kp = fromSeed(new TextEncoder().encode(vectors.seed));

describe("signatures compatible with the Go gateway", () => {
  it("derives the same public key from the seed", () => {
    expect(kp.getPublicKey()).toBe(vectors.public_key);
  });

  for (const v of vectors.vectors) {
    it(`signs ${JSON.stringify(v.text)} to the same bytes`, () => {
      expect(signMessage(kp, v.room, v.id, v.text)).toBe(v.sig);
    });

    for (const [name, impl] of [
      ["WebCrypto", webCryptoVerify],
      ["nkeys", naclVerify],
      ["default", undefined],
    ] as const) {
      it(`verifies the Go signature of ${JSON.stringify(v.text)} (${name})`, async () => {
        expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, v.sig, impl)).toBe(true);
      });

      it(`refuses it for another room, id or text (${name})`, async () => {
        expect(await verifyMessage(vectors.public_key, v.room + "x", v.id, v.text, v.sig, impl)).toBe(false);
        expect(await verifyMessage(vectors.public_key, v.room, v.id + "x", v.text, v.sig, impl)).toBe(false);
        expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text + " ", v.sig, impl)).toBe(false);
      });
    }
  }

  it("refuses another sender's key", async () => {
    const v = vectors.vectors[0]!;
    const other = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
    expect(await verifyMessage(other, v.room, v.id, v.text, v.sig)).toBe(false);
  });

  it("refuses malformed keys and signatures without throwing", async () => {
    const v = vectors.vectors[0]!;
    expect(await verifyMessage("not a key", v.room, v.id, v.text, v.sig)).toBe(false);
    expect(await verifyMessage(vectors.seed, v.room, v.id, v.text, v.sig)).toBe(false);
    expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, "")).toBe(false);
    expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, "!!!")).toBe(false);
    expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, v.sig.slice(0, -4))).toBe(false);
    const flipped = (v.sig[0] === "A" ? "B" : "A") + v.sig.slice(1);
    expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, flipped)).toBe(false);
  });

  it("accepts padded base64url as the gateway does", async () => {
    const v = vectors.vectors[0]!;
    expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, v.sig + "==")).toBe(true);
  });
});

describe("image signatures compatible with the Go gateway", () => {
  for (const v of vectors.image_vectors) {
    it(`signs the image ${v.upload} with ${JSON.stringify(v.text)} to the same bytes`, () => {
      expect(signImage(kp, v.room, v.id, v.upload, v.text)).toBe(v.sig);
    });

    it(`verifies the Go signature of the image ${v.upload}, and only for it`, async () => {
      expect(await verifyImage(vectors.public_key, v.room, v.id, v.upload, v.text, v.sig)).toBe(true);
      expect(await verifyImage(vectors.public_key, v.room, v.id, v.upload + "x", v.text, v.sig)).toBe(false);
      expect(await verifyMessage(vectors.public_key, v.room, v.id, v.text, v.sig)).toBe(false);
    });
  }
});

describe("image message signatures", () => {
  const room = "neon-q3x7mz4b";
  const id = "k7Hq2Xb9";
  const upload = "upl_ABCDEFGHIJKLMNOPQRST";

  it("sign natter/v1/image, room, id, upload and caption, one per line", () => {
    const text = "a caption 👋";
    expect(new TextDecoder().decode(signedImagePayload(room, id, upload, text))).toBe(
      `natter/v1/image\n${room}\n${id}\n${upload}\n${text}`,
    );
    // An empty caption still ends with the newline after the upload.
    expect(new TextDecoder().decode(signedImagePayload(room, id, upload, ""))).toBe(`natter/v1/image\n${room}\n${id}\n${upload}\n`);
  });

  for (const [name, impl] of [
    ["WebCrypto", webCryptoVerify],
    ["nkeys", naclVerify],
    ["default", undefined],
  ] as const) {
    it(`verify with the sender's key, and only for the same room, id, upload and caption (${name})`, async () => {
      const sig = signImage(kp, room, id, upload, "caption");
      expect(await verifyImage(vectors.public_key, room, id, upload, "caption", sig, impl)).toBe(true);
      expect(await verifyImage(vectors.public_key, room + "x", id, upload, "caption", sig, impl)).toBe(false);
      expect(await verifyImage(vectors.public_key, room, id + "x", upload, "caption", sig, impl)).toBe(false);
      expect(await verifyImage(vectors.public_key, room, id, "upl_ZZZZZZZZZZZZZZZZZZZZ", "caption", sig, impl)).toBe(false);
      expect(await verifyImage(vectors.public_key, room, id, upload, "", sig, impl)).toBe(false);
    });
  }

  it("never pass for a text message, nor a text message's for an image", async () => {
    // The upload and caption joined by a newline make the same tail as a
    // text message whose text holds that newline: the prefix tells them apart.
    const text = `${upload}\ncaption`;
    const textSig = signMessage(kp, room, id, text);
    expect(await verifyImage(vectors.public_key, room, id, upload, "caption", textSig)).toBe(false);
    const imageSig = signImage(kp, room, id, upload, "caption");
    expect(await verifyMessage(vectors.public_key, room, id, text, imageSig)).toBe(false);
  });

  it("refuse malformed keys and signatures without throwing", async () => {
    expect(await verifyImage("not a key", room, id, upload, "", "AAAA")).toBe(false);
    expect(await verifyImage(vectors.public_key, room, id, upload, "", "!!!")).toBe(false);
  });
});

describe("base64url", () => {
  it("round-trips every length, without padding", () => {
    for (let n = 0; n < 70; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const s = base64url(bytes);
      const std = btoa(String.fromCharCode(...bytes));
      expect(s).toBe(std.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""));
      expect(fromBase64url(s)).toEqual(bytes);
    }
  });
});

describe("rawPublicKey", () => {
  it("is the ed25519 public key of the seed", async () => {
    // The Go program made the seed from the bytes i*7; WebCrypto derives
    // the public key from them on its own.
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, ...seed]);
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", key);
    expect(base64url(rawPublicKey(vectors.public_key)!)).toBe(jwk.x);
  });

  it("refuses non-user keys", () => {
    expect(rawPublicKey(vectors.seed)).toBeNull();
    expect(rawPublicKey("ADXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4")).toBeNull();
    expect(rawPublicKey("")).toBeNull();
  });
});
