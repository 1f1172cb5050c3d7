package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/natterchat/natter/gateway"
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
	// The chat defaults are the gateway's own, so natter run bare and a
	// gateway opened with a zero ChatConfig behave alike.
	want := gateway.DefaultChatConfig
	want.DedupeWindow = 0 // not configurable
	if got := cfg.chatConfig(); got != want {
		t.Fatalf("chat defaults: %+v, want %+v", got, want)
	}
}

func TestLoadConfigChat(t *testing.T) {
	env := map[string]string{
		"NATTER_ROOM_IDLE_TTL":             "90s",
		"NATTER_ROOM_MAX_TTL":              "2h",
		"NATTER_ROOMS_PER_HOUR":            "3",
		"NATTER_ROOMS_PER_HOUR_REGISTERED": "12",
		"NATTER_TOKEN_TTL":                 "30m",
		"NATTER_HISTORY_MAX":               "50",
		"NATTER_MESSAGE_MAX_CHARS":         "280",
		"NATTER_PRESENCE_TTL":              "30s",
		"NATTER_SEND_RATE":                 "2.5",
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg, err := LoadConfig(fs, []string{"-send-burst", "7"}, func(k string) string { return env[k] }, "")
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.ChatConfig{
		RoomIdleTTL: 90 * time.Second, RoomMaxTTL: 2 * time.Hour, RoomsPerHour: 3, RoomsPerHourRegistered: 12,
		TokenTTL: 30 * time.Minute, HistoryMax: 50,
		MessageMaxChars: 280, PresenceTTL: 30 * time.Second, SendRate: 2.5, SendBurst: 7,
	}
	if got := cfg.chatConfig(); got != want {
		t.Fatalf("chat config: %+v, want %+v", got, want)
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
		{"no replicas", map[string]string{"NATTER_REPLICAS": "0"}, nil, ""},
		{"more replicas than JetStream keeps", nil, []string{"-replicas", "6"}, ""},
		{"unknown flag", nil, []string{"-nope"}, ""},
		{"bad .env line", nil, nil, "NATTER_HTTP_ADDR\n"},
		{"room ttl under a second", map[string]string{"NATTER_ROOM_IDLE_TTL": "500ms"}, nil, ""},
		{"presence ttl zero", nil, []string{"-presence-ttl", "0s"}, ""},
		{"no rooms per hour", map[string]string{"NATTER_ROOMS_PER_HOUR": "0"}, nil, ""},
		{"no rooms per hour for registered users", nil, []string{"-rooms-per-hour-registered", "0"}, ""},
		{"negative history", nil, []string{"-history-max", "-1"}, ""},
		{"message length not a number", map[string]string{"NATTER_MESSAGE_MAX_CHARS": "lots"}, nil, ""},
		{"send rate zero", map[string]string{"NATTER_SEND_RATE": "0"}, nil, ""},
		{"send rate not a number", nil, []string{"-send-rate", "NaN"}, ""},
		{"send burst zero", nil, []string{"-send-burst", "0"}, ""},
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

// TestConfigReplicas: unless NATTER_REPLICAS says otherwise, the buckets
// have one replica on the embedded NATS and one per external URL, up to 3.
func TestConfigReplicas(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"embedded", nil, 1},
		{"embedded, set", map[string]string{"NATTER_REPLICAS": "3"}, 3},
		{"one url", map[string]string{"NATTER_NATS_URL": "nats://a:4222"}, 1},
		{"two urls", map[string]string{"NATTER_NATS_URL": "nats://a:4222,nats://b:4222"}, 2},
		{"three urls, spaces and a trailing comma", map[string]string{"NATTER_NATS_URL": "nats://a:4222, nats://b:4222 ,nats://c:4222,"}, 3},
		{"five urls", map[string]string{"NATTER_NATS_URL": "nats://a,nats://b,nats://c,nats://d,nats://e"}, 3},
		{"three urls, set to 1", map[string]string{"NATTER_NATS_URL": "nats://a,nats://b,nats://c", "NATTER_REPLICAS": "1"}, 1},
		{"one url, set to 5", map[string]string{"NATTER_NATS_URL": "nats://a", "NATTER_REPLICAS": "5"}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			cfg, err := LoadConfig(fs, nil, func(k string) string { return tt.env[k] }, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.replicas(); got != tt.want {
				t.Errorf("replicas = %d, want %d", got, tt.want)
			}
		})
	}
}
