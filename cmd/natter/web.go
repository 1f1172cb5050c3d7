package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
)

// tlsConfig loads NATTER_TLS_CERT and NATTER_TLS_KEY; nil when neither is set.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return nil, errors.New("NATTER_TLS_CERT and NATTER_TLS_KEY go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// wsOrigins are the web origins the embedded NATS accepts WebSocket
// handshakes from: NATTER_ALLOWED_ORIGINS when set, otherwise the origins of
// natter's own HTTP listener, bound to httpPort; NATTER_PUBLIC_URL always.
// A listener on a wildcard or loopback address is reached as localhost,
// 127.0.0.1 or [::1]; one on a named address by that name.
func (c Config) wsOrigins(httpPort int, https bool) []string {
	origins := slices.Clone(c.AllowedOrigins)
	if len(origins) == 0 {
		scheme := "http://"
		if https {
			scheme = "https://"
		}
		host, _, _ := net.SplitHostPort(c.HTTPAddr)
		var hosts []string
		if ip := net.ParseIP(host); host == "" || host == "localhost" || ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) {
			hosts = []string{"localhost", "127.0.0.1", "::1"}
		}
		if ip := net.ParseIP(host); host != "" && !slices.Contains(hosts, host) && (ip == nil || !ip.IsUnspecified()) {
			hosts = append(hosts, host)
		}
		for _, h := range hosts {
			origins = append(origins, scheme+net.JoinHostPort(h, strconv.Itoa(httpPort)))
		}
	}
	if c.PublicURL != "" && !slices.Contains(origins, c.PublicURL) {
		origins = append(origins, c.PublicURL)
	}
	return origins
}
