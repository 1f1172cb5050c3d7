import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The natter server the dev server and the preview send /api to.
const natter = process.env.NATTER_URL ?? "http://127.0.0.1:8080";

// The policy natter's production page must work under; the preview server
// sends it too, so a violation shows up before it ships.
const csp = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self' ws: wss: http: https:",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export default defineConfig({
  plugins: [react()],
  envPrefix: ["VITE_", "NEXT_PUBLIC_"],
  server: {
    proxy: { "/api": { target: natter } },
  },
  preview: {
    proxy: { "/api": { target: natter } },
    headers: { "Content-Security-Policy": csp },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 600,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
