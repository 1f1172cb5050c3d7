package frontend

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

func TestHandlerServesTheAppWithFallback(t *testing.T) {
	h := Handler()
	index, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/index.html", "/r/neon-k7f3qz2a", "/some/deep/link"} {
		resp := get(t, h, path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != string(index) {
			t.Errorf("%s: %d, not index.html", path, resp.StatusCode)
		}
		for header, want := range map[string]string{
			"Cache-Control":           "no-cache",
			"Content-Security-Policy": "script-src 'self'",
			"X-Content-Type-Options":  "nosniff",
			"Content-Type":            "text/html",
		} {
			if got := resp.Header.Get(header); !strings.Contains(got, want) {
				t.Errorf("%s: %s = %q, want %q", path, header, got, want)
			}
		}
	}
	if resp := get(t, h, "/assets/gone-1234.js"); resp.StatusCode != 404 {
		t.Errorf("a missing asset: %d, want 404", resp.StatusCode)
	}
	assets, _ := fs.Glob(dist, "dist/assets/*")
	for _, a := range assets {
		resp := get(t, h, strings.TrimPrefix(a, "dist"))
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d cache %q", a, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}
