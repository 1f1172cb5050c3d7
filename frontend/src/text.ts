/** codePoints counts Unicode code points, as the gateway counts a message's length. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/** newMessageId makes a random message id: 22 of A–Z a–z 0–9 _ - (132 bits). */
export function newMessageId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(22));
  let id = "";
  for (const b of bytes) id += idAlphabet[b & 63];
  return id;
}

/** A run of a message's text: plain, or an http(s) link. */
export interface Segment {
  text: string;
  href?: string;
}

const urlPattern = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/**
 * linkify splits text into plain runs and http(s) links. Trailing
 * punctuation stays outside a link, and so does a closing parenthesis that
 * has no opening one inside it. Nothing here produces markup: the view
 * renders every run as text.
 */
export function linkify(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const m of text.matchAll(urlPattern)) {
    let url = m[0];
    for (;;) {
      const trimmed = url.replace(/[.,;:!?*]+$/, "");
      const open = (trimmed.match(/\(/g) ?? []).length;
      const close = (trimmed.match(/\)/g) ?? []).length;
      const next = trimmed.endsWith(")") && close > open ? trimmed.slice(0, -1) : trimmed;
      if (next === url) break;
      url = next;
    }
    const start = m.index;
    let href: string | undefined;
    try {
      const u = new URL(url);
      if (u.protocol === "http:" || u.protocol === "https:") href = u.href;
    } catch {
      href = undefined;
    }
    if (href === undefined) continue;
    if (start > last) out.push({ text: text.slice(last, start) });
    out.push({ text: url, href });
    last = start + url.length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** initials of a display name, for its avatar: "Brave Otter" → "BO". */
export function initials(name: string): string {
  const words = name.replace(/\(\d+\)$/, "").trim().split(/\s+/).filter(Boolean);
  const first = (w: string | undefined) => (w === undefined ? "" : (Array.from(w)[0] ?? "").toUpperCase());
  if (words.length === 0) return "?";
  if (words.length === 1) return first(words[0]);
  return first(words[0]) + first(words[words.length - 1]);
}

/** colourIndex picks one of n colours for a user id, the same on every client. */
export function colourIndex(id: string, n: number): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % n;
}
