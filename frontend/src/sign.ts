import { fromPublic, type KeyPair } from "@nats-io/nkeys";

/** SIGNATURE_PREFIX starts every signed payload (natter.SignaturePrefix). */
export const SIGNATURE_PREFIX = "natter/v1";

const encoder = new TextEncoder();

/** The UTF-8 bytes a sender signs: natter/v1\n<room>\n<id>\n<text>. */
export function signedPayload(room: string, id: string, text: string): Uint8Array {
  return encoder.encode(`${SIGNATURE_PREFIX}\n${room}\n${id}\n${text}`);
}

/**
 * IMAGE_SIGNATURE_PREFIX starts the payload of an image message: a prefix of
 * its own, so a text message's signature can never pass for an image's.
 */
export const IMAGE_SIGNATURE_PREFIX = "natter/v1/image";

/** The UTF-8 bytes a sender of an image signs: natter/v1/image\n<room>\n<id>\n<upload>\n<text>. */
export function signedImagePayload(room: string, id: string, upload: string, text: string): Uint8Array {
  return encoder.encode(`${IMAGE_SIGNATURE_PREFIX}\n${room}\n${id}\n${upload}\n${text}`);
}

/** Signs an image message (upload and caption) for room under id with the user's key pair. */
export function signImage(kp: KeyPair, room: string, id: string, upload: string, text: string): string {
  return base64url(kp.sign(signedImagePayload(room, id, upload, text)));
}

/** Signs text for room under id with the user's key pair, as the gateway verifies it. */
export function signMessage(kp: KeyPair, room: string, id: string, text: string): string {
  return base64url(kp.sign(signedPayload(room, id, text)));
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding (Go's base64.RawURLEncoding). */
export function base64url(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += b64url[n >> 18]! + b64url[(n >> 12) & 63]! + b64url[(n >> 6) & 63]! + b64url[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += b64url[n >> 18]! + b64url[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += b64url[n >> 18]! + b64url[(n >> 12) & 63]! + b64url[(n >> 6) & 63]!;
  }
  return out;
}

/** Decodes base64url with or without padding; null when it is not base64url. */
export function fromBase64url(s: string): Uint8Array | null {
  s = s.replace(/=+$/, "");
  if (s.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of s) {
    const v = b64url.indexOf(ch);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const b32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * The raw 32-byte ed25519 key of an nkey user public key (U…), or null when
 * it is not one (wrong prefix, checksum or length).
 */
export function rawPublicKey(user: string): Uint8Array | null {
  try {
    fromPublic(user); // checks the prefix and the checksum
  } catch {
    return null;
  }
  if (!user.startsWith("U") || user.length !== 56) return null;
  const out = new Uint8Array(35);
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of user) {
    acc = ((acc << 5) | b32.indexOf(ch)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.slice(1, 33); // prefix byte, key, crc16
}

/** An ed25519 verifier: user public key (U…), message, signature → valid. */
export type Ed25519Verify = (user: string, data: Uint8Array, sig: Uint8Array) => Promise<boolean>;

/** Verifies with nkeys' ed25519 (tweetnacl): everywhere, but slow. */
export const naclVerify: Ed25519Verify = async (user, data, sig) => fromPublic(user).verify(data, sig);

const keyCache = new Map<string, Promise<CryptoKey>>();

/** Verifies with WebCrypto's Ed25519: about a hundred times faster than naclVerify. */
export const webCryptoVerify: Ed25519Verify = async (user, data, sig) => {
  let k = keyCache.get(user);
  if (k === undefined) {
    const raw = rawPublicKey(user);
    if (raw === null) return false;
    k = crypto.subtle.importKey("raw", raw as BufferSource, { name: "Ed25519" }, false, ["verify"]);
    keyCache.set(user, k);
  }
  return crypto.subtle.verify({ name: "Ed25519" }, await k, sig as BufferSource, data as BufferSource);
};

let chosen: Promise<Ed25519Verify> | undefined;

/** WebCrypto's Ed25519 when the browser has it, nkeys' otherwise. */
function verifier(): Promise<Ed25519Verify> {
  chosen ??= (async () => {
    try {
      const probe = new Uint8Array(32);
      probe[0] = 1;
      await crypto.subtle.importKey("raw", probe, { name: "Ed25519" }, false, ["verify"]);
      return webCryptoVerify;
    } catch {
      return naclVerify;
    }
  })();
  return chosen;
}

/**
 * Reports whether sig is user's signature of text for room under id. Any
 * malformed part (key, signature) makes it false, never an exception.
 */
export function verifyMessage(
  user: string,
  room: string,
  id: string,
  text: string,
  sig: string,
  verify?: Ed25519Verify,
): Promise<boolean> {
  return verifyPayload(user, signedPayload(room, id, text), sig, verify);
}

/**
 * Reports whether sig is user's signature of an image message (upload and
 * caption) for room under id; like verifyMessage, never an exception.
 */
export function verifyImage(
  user: string,
  room: string,
  id: string,
  upload: string,
  text: string,
  sig: string,
  verify?: Ed25519Verify,
): Promise<boolean> {
  return verifyPayload(user, signedImagePayload(room, id, upload, text), sig, verify);
}

async function verifyPayload(user: string, payload: Uint8Array, sig: string, verify?: Ed25519Verify): Promise<boolean> {
  const raw = fromBase64url(sig);
  if (rawPublicKey(user) === null || raw === null || raw.length !== 64) return false;
  try {
    return await (verify ?? (await verifier()))(user, payload, raw);
  } catch {
    return false;
  }
}
