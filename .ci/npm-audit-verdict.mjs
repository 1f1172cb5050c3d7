// Reads `npm audit --json` on standard input and exits 0 when it reports no
// vulnerability, 1 when it reports any, 2 when it is no audit report at all
// (an error from the registry's audit endpoint, say).
import { readFileSync } from "node:fs";

const text = readFileSync(0, "utf8");
let report;
try {
  report = JSON.parse(text);
} catch {
  report = undefined;
}
const counts = report?.metadata?.vulnerabilities;
if (!counts || typeof counts.total !== "number") {
  const why = report?.message ?? report?.error?.summary ?? text.trim().slice(0, 200);
  console.log(`no audit report: ${why || "empty answer"}`);
  process.exit(2);
}
const levels = ["critical", "high", "moderate", "low", "info"]
  .filter((l) => counts[l] > 0)
  .map((l) => `${counts[l]} ${l}`);
console.log(
  counts.total === 0
    ? "npm audit: no known vulnerability in the frontend's runtime packages"
    : `npm audit: ${counts.total} vulnerabilities (${levels.join(", ")})`,
);
process.exit(counts.total === 0 ? 0 : 1);
