package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natterchat/natter/gateway"
)

// Config is natter's configuration. Each field has a flag and a NATTER_*
// environment variable; a .env file in the working directory supplies
// variables the environment does not set.
type Config struct {
	HTTPAddr       string
	WSAddr         string
	NATSAddr       string
	DataDir        string
	StoreKey       string // encrypts the JetStream store; never logged
	TokenTTL       time.Duration
	AllowedOrigins []string
	PublicURL      string
	WSURLs         []string
	TLSCert        string
	TLSKey         string
	TokenRate      float64
	TokenBurst     int
	TokenKeyRate   float64
	TokenKeyBurst  int
	MaxConnections int
	NATSURL        string
	NATSCreds      string
	SigningKey     string
	Replicas       int
	LogLevel       string

	// Observability: Prometheus metrics and Go profiles on a listener of
	// their own, and the embedded NATS's monitoring.
	MetricsAddr     string
	PProf           bool
	NATSMonitorAddr string

	// The rules of rooms, messages and presence, for gateway.ChatConfig.
	RoomIdleTTL  time.Duration
	RoomMaxTTL   time.Duration
	RoomsPerHour int
	// RoomsPerHourRegistered is RoomsPerHour for registered accounts.
	RoomsPerHourRegistered int
	HistoryMax             int
	MessageMaxChars        int
	PresenceTTL            time.Duration
	SendRate               float64
	SendBurst              int

	// Uploads: the largest image file, and uploads a minute per user key.
	UploadMaxBytes int
	UploadRate     int
}

// setting ties one Config field to its flag and environment variable.
type setting struct {
	flag, env, def, usage string
	set                   func(*Config, string) error
}

func str(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

func list(f func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*f(c) = splitList(v)
		return nil
	}
}

// splitList splits a comma-separated list, dropping blank items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// origin is str for a web origin: an absolute http or https URL with a host
// and no path, stored without a trailing slash.
func origin(f func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*f(c) = ""
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil {
			return err
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return errors.New("want an origin such as https://chat.example.com: http or https, a host, an optional port, no path")
		}
		*f(c) = u.Scheme + "://" + u.Host
		return nil
	}
}

func dur(f func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		*f(c) = d
		return err
	}
}

// ttl is dur for a JetStream per-key TTL, which counts whole seconds.
func ttl(f func(*Config) *time.Duration) func(*Config, string) error {
	set := dur(f)
	return func(c *Config, v string) error {
		if err := set(c, v); err != nil {
			return err
		}
		if *f(c) < time.Second {
			return errors.New("must be at least 1s")
		}
		return nil
	}
}

func integer(f func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*f(c) = n
		return err
	}
}

// positive is integer for counts where 0 would mean nothing works.
func positive(f func(*Config) *int) func(*Config, string) error {
	set := integer(f)
	return func(c *Config, v string) error {
		if err := set(c, v); err != nil {
			return err
		}
		if *f(c) <= 0 {
			return errors.New("must be positive")
		}
		return nil
	}
}

// replicas is integer for a JetStream replica count, which the server takes
// from 1 to 5; empty stores 0, for Config.replicas to choose.
func replicas(f func(*Config) *int) func(*Config, string) error {
	set := integer(f)
	return func(c *Config, v string) error {
		if v == "" {
			*f(c) = 0
			return nil
		}
		if err := set(c, v); err != nil {
			return err
		}
		if n := *f(c); n < 1 || n > 5 {
			return errors.New("must be from 1 to 5")
		}
		return nil
	}
}

func float(f func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseFloat(v, 64)
		*f(c) = n
		return err
	}
}

// boolean is a switch: its flag alone (-pprof) turns it on.
func boolean(f func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*f(c) = b
		return err
	}
}

// positiveFloat is float for rates where 0 would mean nothing works.
func positiveFloat(f func(*Config) *float64) func(*Config, string) error {
	set := float(f)
	return func(c *Config, v string) error {
		if err := set(c, v); err != nil {
			return err
		}
		if !(*f(c) > 0) {
			return errors.New("must be positive")
		}
		return nil
	}
}

var settings = []setting{
	{"http-addr", "NATTER_HTTP_ADDR", ":8080", "HTTP listen address of the TVM API (and web app)", str(func(c *Config) *string { return &c.HTTPAddr })},
	{"ws-addr", "NATTER_WS_ADDR", ":8081", "NATS WebSocket listen address that browsers connect to (embedded NATS)", str(func(c *Config) *string { return &c.WSAddr })},
	{"nats-addr", "NATTER_NATS_ADDR", "127.0.0.1:4222", "NATS client listen address for operators and the nats CLI (embedded NATS)", str(func(c *Config) *string { return &c.NATSAddr })},
	{"data-dir", "NATTER_DATA_DIR", "./data", "directory for keys and JetStream storage", str(func(c *Config) *string { return &c.DataDir })},
	{"store-key", "NATTER_STORE_KEY", "", "key that encrypts everything the embedded NATS stores (AES-GCM), at least 16 characters; every later start needs the same key. Prefer the environment or .env: a flag shows in ps", str(func(c *Config) *string { return &c.StoreKey })},
	{"token-ttl", "NATTER_TOKEN_TTL", "1h", "lifetime of vended user JWTs", dur(func(c *Config) *time.Duration { return &c.TokenTTL })},
	{"allowed-origins", "NATTER_ALLOWED_ORIGINS", "", "comma-separated web origins allowed for CORS and WebSocket; empty allows WebSockets only from natter's own HTTP origin (and -public-url) and no CORS", list(func(c *Config) *[]string { return &c.AllowedOrigins })},
	{"public-url", "NATTER_PUBLIC_URL", "", "the origin browsers load the app from when natter is behind a proxy (e.g. https://chat.example.com); always allowed to open WebSockets", origin(func(c *Config) *string { return &c.PublicURL })},
	{"ws-urls", "NATTER_WS_URLS", "", "comma-separated WebSocket URLs handed to clients; empty derives ws://<host the client used>:<ws port> (wss:// with TLS)", list(func(c *Config) *[]string { return &c.WSURLs })},
	{"tls-cert", "NATTER_TLS_CERT", "", "PEM certificate (chain) file: with -tls-key, serve HTTPS and WSS", str(func(c *Config) *string { return &c.TLSCert })},
	{"tls-key", "NATTER_TLS_KEY", "", "PEM private key file of -tls-cert", str(func(c *Config) *string { return &c.TLSKey })},
	{"token-rate", "NATTER_TOKEN_RATE", "2", "API requests per second allowed per client address (0 turns the limit off)", float(func(c *Config) *float64 { return &c.TokenRate })},
	{"token-burst", "NATTER_TOKEN_BURST", "20", "API request burst allowed per client address", integer(func(c *Config) *int { return &c.TokenBurst })},
	{"token-key-rate", "NATTER_TOKEN_KEY_RATE", "0.5", "token requests per second allowed per public key, from any address (0 turns the limit off)", float(func(c *Config) *float64 { return &c.TokenKeyRate })},
	{"token-key-burst", "NATTER_TOKEN_KEY_BURST", "10", "token request burst allowed per public key", integer(func(c *Config) *int { return &c.TokenKeyBurst })},
	{"max-connections", "NATTER_MAX_CONNECTIONS", "100000", "NATS connections the chat account takes at once, natter's own included (embedded NATS)", positive(func(c *Config) *int { return &c.MaxConnections })},
	{"nats-url", "NATTER_NATS_URL", "", "comma-separated URLs of an external NATS; empty runs the embedded server", str(func(c *Config) *string { return &c.NATSURL })},
	{"nats-creds", "NATTER_NATS_CREDS", "", "creds file of natter's service user on the external NATS", str(func(c *Config) *string { return &c.NATSCreds })},
	{"signing-key", "NATTER_SIGNING_KEY", "", "seed file of the chat account's scoped signing key (external NATS)", str(func(c *Config) *string { return &c.SigningKey })},
	{"replicas", "NATTER_REPLICAS", "", "replicas of the JetStream buckets, 1 to 5; empty: 1, or with -nats-url one per URL up to 3", replicas(func(c *Config) *int { return &c.Replicas })},
	{"log-level", "NATTER_LOG_LEVEL", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
	{"metrics-addr", "NATTER_METRICS_ADDR", "", "listen address of /metrics (Prometheus) and, with -pprof, /debug/pprof/, e.g. 127.0.0.1:9090; keep it private. Empty: off", str(func(c *Config) *string { return &c.MetricsAddr })},
	{"pprof", "NATTER_PPROF", "false", "serve Go profiles under /debug/pprof/ on the metrics listener (needs -metrics-addr)", boolean(func(c *Config) *bool { return &c.PProf })},
	{"nats-monitor-addr", "NATTER_NATS_MONITOR_ADDR", "", "listen address of the embedded NATS's HTTP monitoring (/varz, /connz, /jsz…), e.g. 127.0.0.1:8222; keep it private. Embedded NATS only: an error with -nats-url. Empty: off", str(func(c *Config) *string { return &c.NATSMonitorAddr })},
	{"room-idle-ttl", "NATTER_ROOM_IDLE_TTL", "5m", "a room with no message and no member present for this long is deleted", ttl(func(c *Config) *time.Duration { return &c.RoomIdleTTL })},
	{"room-max-ttl", "NATTER_ROOM_MAX_TTL", "12h", "every room is deleted this long after its creation", ttl(func(c *Config) *time.Duration { return &c.RoomMaxTTL })},
	{"rooms-per-hour", "NATTER_ROOMS_PER_HOUR", "5", "rooms one user may create per hour", positive(func(c *Config) *int { return &c.RoomsPerHour })},
	{"rooms-per-hour-registered", "NATTER_ROOMS_PER_HOUR_REGISTERED", "20", "rooms one registered account may create per hour", positive(func(c *Config) *int { return &c.RoomsPerHourRegistered })},
	{"history-max", "NATTER_HISTORY_MAX", "500", "messages kept per room", positive(func(c *Config) *int { return &c.HistoryMax })},
	{"message-max-chars", "NATTER_MESSAGE_MAX_CHARS", "1000", "longest message, in Unicode code points", positive(func(c *Config) *int { return &c.MessageMaxChars })},
	{"presence-ttl", "NATTER_PRESENCE_TTL", "60s", "a member without a heartbeat for this long leaves the room", ttl(func(c *Config) *time.Duration { return &c.PresenceTTL })},
	{"send-rate", "NATTER_SEND_RATE", "10", "messages per second one user may send in one room", positiveFloat(func(c *Config) *float64 { return &c.SendRate })},
	{"send-burst", "NATTER_SEND_BURST", "20", "burst of the above", positive(func(c *Config) *int { return &c.SendBurst })},
	{"upload-max-bytes", "NATTER_UPLOAD_MAX_BYTES", "5242880", "largest image file a member may upload, in bytes", positive(func(c *Config) *int { return &c.UploadMaxBytes })},
	{"upload-rate", "NATTER_UPLOAD_RATE", "10", "images one user key may upload per minute", positive(func(c *Config) *int { return &c.UploadRate })},
}

// LoadConfig builds a Config from defaults, then the dotenv file (if it
// exists), then the environment, then args parsed by fs, to which it adds a
// flag per setting; callers may add flags of their own to fs first.
func LoadConfig(fs *flag.FlagSet, args []string, getenv func(string) string, dotenv string) (Config, error) {
	var c Config
	fileVars, err := readDotEnv(dotenv)
	if err != nil {
		return c, err
	}
	for _, s := range settings {
		v, from := s.def, "default"
		if fv, ok := fileVars[s.env]; ok {
			v, from = fv, dotenv
		}
		if ev := getenv(s.env); ev != "" {
			v, from = ev, "environment"
		}
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("%s=%q (from %s): %w", s.env, v, from, err)
		}
	}
	for _, s := range settings {
		usage, set := fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def), func(v string) error { return s.set(&c, v) }
		// A setting that defaults to false is a switch: -pprof alone means
		// -pprof=true, as with any Go boolean flag.
		if s.def == "false" {
			fs.BoolFunc(s.flag, usage, set)
		} else {
			fs.Func(s.flag, usage, set)
		}
	}
	return c, fs.Parse(args)
}

// readDotEnv reads KEY=VALUE lines; a missing file is no error.
func readDotEnv(path string) (map[string]string, error) {
	vars := map[string]string{}
	if path == "" {
		return vars, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return vars, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars, sc.Err()
}

// maxDefaultReplicas caps the replicas chosen from the number of NATS URLs:
// three copies keep a majority through the loss of one node, and more cost
// every write without a use for chat.
const maxDefaultReplicas = 3

// replicas is the number of replicas of the buckets: NATTER_REPLICAS when
// set; else 1 with the embedded NATS, and with an external one a replica per
// URL in NATTER_NATS_URL, up to 3, as each URL is taken to be a node.
func (c Config) replicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	return max(1, min(len(splitList(c.NATSURL)), maxDefaultReplicas))
}

// chatConfig is the gateway's part of c. Zero fields, as in a Config built
// by hand, take the gateway's defaults.
func (c Config) chatConfig() gateway.ChatConfig {
	return gateway.ChatConfig{
		RoomIdleTTL:            c.RoomIdleTTL,
		RoomMaxTTL:             c.RoomMaxTTL,
		RoomsPerHour:           c.RoomsPerHour,
		RoomsPerHourRegistered: c.RoomsPerHourRegistered,
		TokenTTL:               c.TokenTTL,
		HistoryMax:             c.HistoryMax,
		MessageMaxChars:        c.MessageMaxChars,
		PresenceTTL:            c.PresenceTTL,
		SendRate:               c.SendRate,
		SendBurst:              c.SendBurst,
	}
}
