import { createUser, fromSeed, type KeyPair } from "@nats-io/nkeys";

const seedKey = "natter.seed";
const nameKey = "natter.name";

/** Identity is the user's nkey pair; the seed never leaves the browser. */
export interface Identity {
  id: string; // the public key (U…)
  seed: string; // SU…
  keyPair: KeyPair;
}

/** A place to keep the identity: localStorage in the browser. */
export type KeyValueStore = Pick<Storage, "getItem" | "setItem">;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * loadIdentity reloads the key pair kept in store, or makes a new one and
 * keeps it, so a returning person is the same user.
 */
export function loadIdentity(store: KeyValueStore | null): Identity {
  const kept = safeGet(store, seedKey);
  if (kept !== null) {
    try {
      const keyPair = fromSeed(encoder.encode(kept));
      const id = keyPair.getPublicKey();
      if (id.startsWith("U")) return { id, seed: kept, keyPair };
    } catch {
      // Not a seed any more: make a new identity.
    }
  }
  return newIdentity(store);
}

/** newIdentity makes a new key pair and keeps it in store in place of the old one. */
export function newIdentity(store: KeyValueStore | null): Identity {
  const keyPair = createUser();
  const seed = decoder.decode(keyPair.getSeed());
  safeSet(store, seedKey, seed);
  return { id: keyPair.getPublicKey(), seed, keyPair };
}

/** The display name kept from the last visit, or null. */
export function loadName(store: KeyValueStore | null): string | null {
  const name = safeGet(store, nameKey);
  return name === null || name.trim() === "" ? null : name;
}

export function saveName(store: KeyValueStore | null, name: string): void {
  safeSet(store, nameKey, name);
}

/** The browser's localStorage, or null where it is unavailable (blocked, private mode). */
export function browserStore(): KeyValueStore | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

function safeGet(store: KeyValueStore | null, key: string): string | null {
  try {
    return store?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

function safeSet(store: KeyValueStore | null, key: string, value: string): void {
  try {
    store?.setItem(key, value);
  } catch {
    // Full or blocked: the identity lasts for this page only.
  }
}
