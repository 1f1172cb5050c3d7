// Package frontend embeds the built browser app (dist/, committed, so the
// Go binary serves the app without Node) and serves it.
package frontend

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// ContentSecurityPolicy is the app's CSP: scripts and styles only from its
// own origin (no inline script), NATS over WebSocket to any host the token
// names, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self' ws: wss: http: https:; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the app: the files of dist, and index.html for every
// other path, so that client-side routes such as /r/<id> load the app.
// Hashed assets are cached for a year; index.html is revalidated every time
// so a new release is picked up at once.
func Handler() http.Handler {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed directive guarantees dist exists
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		panic("frontend/dist/index.html is missing: run npm run build in frontend/")
	}
	static := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name != "" && name != "index.html" {
			if fi, err := fs.Stat(files, name); err == nil && !fi.IsDir() {
				if strings.HasPrefix(name, "assets/") {
					h.Set("Cache-Control", "public, max-age=31536000, immutable")
				} else {
					h.Set("Cache-Control", "no-cache")
				}
				static.ServeHTTP(w, r)
				return
			}
		}
		if strings.HasPrefix(name, "assets/") {
			http.NotFound(w, r) // a stale page asking for an old bundle
			return
		}
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodHead {
			w.Write(index)
		}
	})
}
