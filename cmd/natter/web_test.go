package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natterchat/natter"
	"github.com/natterchat/natter/client"
	"github.com/natterchat/natter/gateway/gatewaytest"
)

func TestWSOrigins(t *testing.T) {
	for _, tc := range []struct {
		name, addr, public string
		allowed            []string
		https              bool
		want               []string
	}{
		{"wildcard", ":8080", "", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"}},
		{"IPv4 wildcard", "0.0.0.0:8080", "", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"}},
		{"IPv6 wildcard", "[::]:8080", "", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"}},
		{"loopback", "127.0.0.1:8080", "", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"}},
		{"another loopback", "127.0.0.2:8080", "", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080", "http://127.0.0.2:8080"}},
		{"a named host", "chat.internal:8080", "", nil, false, []string{"http://chat.internal:8080"}},
		{"an address", "192.0.2.7:8080", "", nil, false, []string{"http://192.0.2.7:8080"}},
		{"TLS", ":8443", "", nil, true, []string{"https://localhost:8443", "https://127.0.0.1:8443", "https://[::1]:8443"}},
		{"public URL", "127.0.0.1:8080", "https://chat.example.com", nil, false, []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080", "https://chat.example.com"}},
		{"allowed origins replace the default", ":8080", "", []string{"https://a.example"}, false, []string{"https://a.example"}},
		{"public URL added to allowed origins", ":8080", "https://chat.example.com", []string{"https://a.example"}, false, []string{"https://a.example", "https://chat.example.com"}},
		{"public URL among allowed origins", ":8080", "https://a.example", []string{"https://a.example"}, false, []string{"https://a.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{HTTPAddr: tc.addr, PublicURL: tc.public, AllowedOrigins: tc.allowed}
			_, p, _ := net.SplitHostPort(tc.addr)
			var port int
			fmt.Sscan(p, &port)
			if got := c.wsOrigins(port, tc.https); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPublicURLSetting(t *testing.T) {
	for v, want := range map[string]string{
		"https://chat.example.com":       "https://chat.example.com",
		"https://chat.example.com/":      "https://chat.example.com",
		"http://chat.example.com:8080":   "http://chat.example.com:8080",
		"":                               "",
		"chat.example.com":               "error",
		"ftp://chat.example.com":         "error",
		"https://chat.example.com/chat":  "error",
		"https://chat.example.com/?x=1":  "error",
		"https://user@chat.example.com":  "error",
		"https://":                       "error",
		"https://chat.example.com#frag":  "error",
		"https://chat.example.com:port/": "error",
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg, err := LoadConfig(fs, nil, func(k string) string {
			if k == "NATTER_PUBLIC_URL" {
				return v
			}
			return ""
		}, "")
		got := cfg.PublicURL
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("NATTER_PUBLIC_URL=%q: %q (%v), want %q", v, got, err, want)
		}
	}
}

// TestAppSecurityHeaders requests every file of the app, its client-side
// routes and a missing asset from natter's HTTP listener: each response has
// a CSP that allows no inline or eval'd script and no framing, nosniff, a
// Referrer-Policy and X-Frame-Options. index.html has no inline script, so
// the CSP does not break the app.
func TestAppSecurityHeaders(t *testing.T) {
	m := runMain(t, testConfig(t))
	paths := []string{"/", "/r/lobby-k7f3qz2a", "/some/deep/link", "/assets/gone-1234.js"}
	dist := filepath.Join("..", "..", "frontend", "dist")
	err := filepath.WalkDir(dist, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dist, path)
			paths = append(paths, "/"+filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, p := range paths {
			req, _ := http.NewRequest(method, m.baseURL()+p, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := 200; strings.Contains(p, "gone") {
				if resp.StatusCode != 404 {
					t.Errorf("%s %s: %d, want 404", method, p, resp.StatusCode)
				}
			} else if resp.StatusCode != want {
				t.Errorf("%s %s: %d, want %d", method, p, resp.StatusCode, want)
			}
			if err := checkSecurityHeaders(resp.Header); err != nil {
				t.Errorf("%s %s: %v", method, p, err)
			}
		}
	}

	index, err := os.ReadFile(filepath.Join(dist, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>`).FindAllString(string(index), -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("index.html has an inline script %s, which the CSP blocks", tag)
		}
	}
	if regexp.MustCompile(`(?i)\son[a-z]+\s*=`).Match(index) {
		t.Error("index.html has an inline event handler, which the CSP blocks")
	}
}

// checkSecurityHeaders checks the headers every app response must carry.
func checkSecurityHeaders(h http.Header) error {
	csp := h.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		if name, value, _ := strings.Cut(strings.TrimSpace(d), " "); name != "" {
			directives[strings.ToLower(name)] = value
		}
	}
	script, ok := directives["script-src"]
	if !ok {
		script, ok = directives["default-src"]
	}
	switch {
	case !ok:
		return fmt.Errorf("CSP %q restricts no script source", csp)
	case strings.Contains(script, "'unsafe-inline'"), strings.Contains(script, "'unsafe-eval'"), strings.Contains(script, "*"), strings.Contains(script, "data:"):
		return fmt.Errorf("CSP script sources %q allow inline, eval'd or foreign script", script)
	case directives["frame-ancestors"] != "'none'" && directives["frame-ancestors"] != "'self'":
		return fmt.Errorf("CSP %q has no frame-ancestors 'none' or 'self'", csp)
	case directives["object-src"] == "" && directives["default-src"] != "'self'" && directives["default-src"] != "'none'":
		return fmt.Errorf("CSP %q allows plugins", csp)
	case h.Get("X-Content-Type-Options") != "nosniff":
		return fmt.Errorf("X-Content-Type-Options %q", h.Get("X-Content-Type-Options"))
	case h.Get("Referrer-Policy") == "":
		return fmt.Errorf("no Referrer-Policy")
	case h.Get("X-Frame-Options") != "DENY":
		return fmt.Errorf("X-Frame-Options %q", h.Get("X-Frame-Options"))
	}
	return nil
}

// TestCORSOnlyForAllowedOrigins: natter sends CORS headers only to the
// origins of NATTER_ALLOWED_ORIGINS, and none by default, so no other web
// page can read its API's answers.
func TestCORSOnlyForAllowedOrigins(t *testing.T) {
	preflight := func(t *testing.T, base, origin string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, base+"/api/v1/token", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// A simple GET is what a foreign page could read without a preflight.
		get, _ := http.NewRequest(http.MethodGet, base+"/api/v1/rooms", nil)
		get.Header.Set("Origin", origin)
		gresp, err := http.DefaultClient.Do(get)
		if err != nil {
			t.Fatal(err)
		}
		gresp.Body.Close()
		a, b := resp.Header.Get("Access-Control-Allow-Origin"), gresp.Header.Get("Access-Control-Allow-Origin")
		if a != b {
			t.Errorf("origin %s: preflight allows %q, GET %q", origin, a, b)
		}
		return a
	}
	t.Run("default", func(t *testing.T) {
		m := runMain(t, testConfig(t))
		for _, o := range []string{"https://evil.example", "http://" + m.HTTPAddr().String()} {
			if got := preflight(t, m.baseURL(), o); got != "" {
				t.Errorf("origin %s: Access-Control-Allow-Origin %q, want none", o, got)
			}
		}
	})
	t.Run("NATTER_ALLOWED_ORIGINS", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.AllowedOrigins = []string{"https://chat.example"}
		m := runMain(t, cfg)
		if got := preflight(t, m.baseURL(), "https://chat.example"); got != "https://chat.example" {
			t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
		}
		if got := preflight(t, m.baseURL(), "https://evil.example"); got != "" {
			t.Errorf("other origin: Access-Control-Allow-Origin %q, want none", got)
		}
	})
}

// selfSigned writes a self-signed certificate for 127.0.0.1, [::1] and
// localhost and its key (0600) into dir, and returns their paths and a pool
// that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "natter test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS runs natter with NATTER_TLS_CERT and NATTER_TLS_KEY set to a
// self-signed certificate: the API answers over HTTPS only, tokens point at
// wss://, a nats.go client trusting the certificate chats over WSS with the
// vended JWT, and the WebSocket listener refuses plain ws and allows the
// https origin of the app by default.
func TestTLS(t *testing.T) {
	cfg := testConfig(t)
	var pool *x509.CertPool
	cfg.TLSCert, cfg.TLSKey, pool = selfSigned(t, t.TempDir())
	m := runMain(t, cfg)
	httpPort, wsPort := m.HTTPAddr().(*net.TCPAddr).Port, m.Gateway.WebSocketPort()
	base := fmt.Sprintf("https://127.0.0.1:%d", httpPort)
	tlsConfig := &tls.Config{RootCAs: pool}
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: 10 * time.Second}

	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the HTTPS listener")
		}
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("a client that does not trust the certificate got an answer")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api := &client.API{BaseURL: base, HTTP: https}
	me, err := client.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.Token(ctx, me, "Ada")
	if err != nil {
		t.Fatalf("token over https: %v", err)
	}
	room, err := api.CreateRoom(ctx, tok, "Lobby")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err = api.Token(ctx, me, "Ada", room.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{fmt.Sprintf("wss://127.0.0.1:%d", wsPort)}; !slices.Equal(tok.Servers, want) {
		t.Fatalf("servers %q, want %q", tok.Servers, want)
	}

	c, err := client.Dial(me, tok, nats.Secure(tlsConfig))
	if err != nil {
		t.Fatalf("connect over wss: %v", err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, room.ID, "Ada"); err != nil {
		t.Fatal(err)
	}
	got := make(chan natter.Envelope, 8)
	if _, err := c.Follow(ctx, room.ID, 0, func(e natter.Envelope) { got <- e }); err != nil {
		t.Fatal(err)
	}
	if ack, err := c.Send(ctx, room.ID, "over TLS"); err != nil || !ack.OK {
		t.Fatalf("send over wss: %+v %v", ack, err)
	}
	timeout := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case e := <-got:
			found = e.Text == "over TLS"
		case <-timeout:
			t.Fatal("the message did not come back over wss")
		}
	}

	plain := *tok
	plain.Servers = []string{fmt.Sprintf("ws://127.0.0.1:%d", wsPort)}
	if nc, err := client.Dial(me, &plain, nats.NoReconnect(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("plain ws connected to the TLS WebSocket listener")
	}
	untrusted := *tok
	if nc, err := client.Dial(me, &untrusted, nats.NoReconnect(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("wss connected without trusting the certificate")
	}

	for origin, want := range map[string]int{
		fmt.Sprintf("https://127.0.0.1:%d", httpPort): 101,
		fmt.Sprintf("https://localhost:%d", httpPort): 101,
		fmt.Sprintf("http://127.0.0.1:%d", httpPort):  403,
		"https://evil.example":                        403,
	} {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", wsPort), nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Origin", origin)
		resp, err := https.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("wss handshake from %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	for name, c := range map[string]Config{
		"cert without key": {TLSCert: certFile},
		"key without cert": {TLSKey: keyFile},
		"missing file":     {TLSCert: certFile, TLSKey: filepath.Join(dir, "nope.pem")},
		"swapped":          {TLSCert: keyFile, TLSKey: certFile},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.TLSCert, cfg.TLSKey = c.TLSCert, c.TLSKey
			m := &Main{Config: cfg}
			err := m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), "TLS") {
				t.Fatalf("got %v, want an error about TLS", err)
			}
		})
	}
}

var _ = gatewaytest.WaitFor
