package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dotenv := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(dotenv, []byte("# comment\nNATTER_HTTP_ADDR=:9000\nexport NATTER_DATA_DIR=\"/from/dotenv\"\nNATTER_TOKEN_TTL='30m'\nNATTER_ALLOWED_ORIGINS=https://a.example, https://b.example\n"), 0o600)
	env := map[string]string{"NATTER_DATA_DIR": "/from/env", "NATTER_WS_ADDR": ":9001"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := LoadConfig(fs, []string{"-ws-addr", ":9002"}, func(k string) string { return env[k] }, dotenv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"default", cfg.NATSAddr, "127.0.0.1:4222"},
		{"from .env", cfg.HTTPAddr, ":9000"},
		{"env beats .env", cfg.DataDir, "/from/env"},
		{"flag beats env", cfg.WSAddr, ":9002"},
		{".env quotes stripped", cfg.TokenTTL, 30 * time.Minute},
		{"list", slices.Equal(cfg.AllowedOrigins, []string{"https://a.example", "https://b.example"}), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := LoadConfig(fs, nil, func(string) string { return "" }, filepath.Join(t.TempDir(), "missing.env"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8080" || cfg.WSAddr != ":8081" || cfg.NATSAddr != "127.0.0.1:4222" || cfg.DataDir != "./data" || cfg.TokenTTL != time.Hour || cfg.NATSURL != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		file string
	}{
		{"bad duration", map[string]string{"NATTER_TOKEN_TTL": "soon"}, nil, ""},
		{"negative duration", map[string]string{"NATTER_TOKEN_TTL": "-1h"}, nil, ""},
		{"bad number", nil, []string{"-replicas", "three"}, ""},
		{"unknown flag", nil, []string{"-nope"}, ""},
		{"bad .env line", nil, nil, "NATTER_HTTP_ADDR\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dotenv := filepath.Join(t.TempDir(), ".env")
			if tc.file != "" {
				os.WriteFile(dotenv, []byte(tc.file), 0o600)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			if _, err := LoadConfig(fs, tc.args, func(k string) string { return tc.env[k] }, dotenv); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
