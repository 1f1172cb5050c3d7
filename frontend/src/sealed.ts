// Sealed rooms (docs/sealed.md): the room key, and each message text
// encrypted with it (AES-256-GCM, WebCrypto only). The key lives in the
// link's fragment and in sessionStorage; it is never sent anywhere.
import { base64url, fromBase64url } from "./sign";

/** SEALED_PREFIX starts the associated data of every sealed message. */
export const SEALED_PREFIX = "natter/v1/sealed";

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

const encoder = new TextEncoder();
// fatal: a plaintext that is not UTF-8 does not decrypt, rather than show U+FFFD.
const decoder = new TextDecoder("utf-8", { fatal: true });

/** associatedData binds a ciphertext to its room, sender and message id. */
export function associatedData(room: string, sender: string, id: string): Uint8Array {
  return encoder.encode(`${SEALED_PREFIX}\n${room}\n${sender}\n${id}`);
}

/** generateRoomKey makes a random 256-bit AES-GCM key, extractable so it can go into the link. */
export function generateRoomKey(): Promise<CryptoKey> {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
}

/** exportRoomKey is the key as it goes into the fragment: base64url of its 32 raw bytes, no padding. */
export async function exportRoomKey(key: CryptoKey): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.exportKey("raw", key)));
}

/** importRoomKey reads a fragment's key; null when it is not 32 bytes of base64url. */
export async function importRoomKey(encoded: string): Promise<CryptoKey | null> {
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return null;
  const raw = fromBase64url(encoded);
  if (raw === null || raw.length !== KEY_BYTES) return null;
  try {
    // Extractable: the room's link is copied from the key kept in memory.
    return await crypto.subtle.importKey("raw", raw as BufferSource, { name: "AES-GCM" }, true, ["encrypt", "decrypt"]);
  } catch {
    return null;
  }
}

/** encryptWithNonce encrypts text under nonce; only tests should choose the nonce. */
export async function encryptWithNonce(
  key: CryptoKey,
  nonce: Uint8Array,
  room: string,
  sender: string,
  id: string,
  text: string,
): Promise<string> {
  if (nonce.length !== NONCE_BYTES) throw new Error("sealed: the nonce must be 12 bytes");
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce as BufferSource, additionalData: associatedData(room, sender, id) as BufferSource, tagLength: 128 },
      key,
      encoder.encode(text) as BufferSource,
    ),
  );
  const out = new Uint8Array(NONCE_BYTES + sealed.length);
  out.set(nonce, 0);
  out.set(sealed, NONCE_BYTES);
  return base64url(out);
}

/** encrypt seals text for room, sender and id with a fresh random nonce: the ct of a sealed send. */
export function encrypt(key: CryptoKey, room: string, sender: string, id: string, text: string): Promise<string> {
  return encryptWithNonce(key, crypto.getRandomValues(new Uint8Array(NONCE_BYTES)), room, sender, id, text);
}

/**
 * decrypt opens ct for room, sender and id; null when it does not decrypt
 * (another key, room, sender or id, tampered, malformed), never an exception.
 */
export async function decrypt(key: CryptoKey, room: string, sender: string, id: string, ct: string): Promise<string | null> {
  if (!/^[A-Za-z0-9_-]*$/.test(ct)) return null;
  const bytes = fromBase64url(ct);
  if (bytes === null || bytes.length < NONCE_BYTES + TAG_BYTES + 1) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: bytes.slice(0, NONCE_BYTES) as BufferSource,
        additionalData: associatedData(room, sender, id) as BufferSource,
        tagLength: 128,
      },
      key,
      bytes.slice(NONCE_BYTES) as BufferSource,
    );
    return decoder.decode(plain);
  } catch {
    return null;
  }
}

/**
 * validSealedText applies a text message's rules to a decrypted text: at
 * least one character, no control characters but newline and tab. The
 * sender checked them, but only a receiver can check what the gateway
 * cannot read. No upper bound: the limit is the server's setting, and the
 * gateway already bounds the ciphertext by it.
 */
export function validSealedText(text: string): boolean {
  return text.length > 0 && !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(text);
}

/** keyFromFragment reads k=<key> from a location hash such as "#k=…"; null when there is none. */
export function keyFromFragment(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const k = params.get("k");
  return k === null || k === "" ? null : k;
}

/** The sessionStorage key under which an opened room's key is kept. */
export function storageKey(room: string): string {
  return `natter.sealed.${room}`;
}

/** The storage the room keys go into: sessionStorage, never localStorage. */
export interface KeyStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

function sessionStore(): KeyStore | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

/**
 * roomKey finds the key of room: the fragment's first (a link just opened
 * may carry a newer or a corrected key), else the one kept in this tab.
 * A fragment's key is kept for a reload or a return to the room. Null when
 * there is neither, or the one found is not a key.
 */
export async function roomKey(room: string, hash: string, store: KeyStore | null = sessionStore()): Promise<CryptoKey | null> {
  const fromLink = keyFromFragment(hash);
  const encoded = fromLink ?? store?.getItem(storageKey(room)) ?? null;
  if (encoded === null) return null;
  const key = await importRoomKey(encoded);
  if (key !== null && fromLink !== null) {
    try {
      store?.setItem(storageKey(room), fromLink);
    } catch {
      // A full or blocked storage: the fragment still works for this visit.
    }
  }
  return key;
}

/** keepRoomKey keeps the key of a room just created in this tab. */
export function keepRoomKey(room: string, encoded: string, store: KeyStore | null = sessionStore()): void {
  try {
    store?.setItem(storageKey(room), encoded);
  } catch {
    // The fragment of the link carries it anyway.
  }
}
