/** Longest wait between two reconnect attempts, in ms. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * backoff is the wait in ms before reconnect attempt n (1 for the first):
 * wait plus up to jitter at first, then a random wait up to twice as long
 * after each failed attempt, at most MAX_BACKOFF_MS ("full jitter"). When
 * natter drops thousands of pages at once, a fixed wait has them all come
 * back faster than it can take their handshakes; doubling the spread after
 * each failure lets the load fall to what the server takes.
 */
export function backoff(n: number, wait: number, jitter: number, random: () => number = Math.random): number {
  const base = wait + jitter;
  if (n <= 1 || base <= 0) return wait + random() * jitter;
  const spread = Math.min(MAX_BACKOFF_MS, base * 2 ** Math.min(n - 1, 16));
  return wait + random() * Math.max(spread - wait, 0);
}
