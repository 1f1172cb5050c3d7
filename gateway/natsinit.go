package gateway

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

// ExternalConfig describes the nats-server that InitExternal writes a
// configuration for.
type ExternalConfig struct {
	Dir        string // where everything is written; made absolute
	ClientAddr string // host:port of the NATS client listener
	WSAddr     string // host:port of the WebSocket listener
	WSURL      string // WebSocket URL handed to browsers; derived from WSAddr when empty
	// AllowedOrigins restricts the Origin header the WebSocket listener
	// accepts; empty accepts any, as the embedded server does.
	AllowedOrigins []string
	Limits         UserLimits
}

// ExternalFiles are the paths InitExternal wrote.
type ExternalFiles struct {
	ServerConf string // nats-server -c this
	Creds      string // natter's service user
	SigningKey string // the TVM's scoped signing key seed
	Env        string // NATTER_* settings for natter, usable as .env
}

var serverConf = template.Must(template.New("conf").Parse(`# nats-server configuration for natter, written by "natter nats init".
# Run: nats-server -c {{.Conf}}
server_name: natter-nats
listen: {{.ClientAddr}}

jetstream {
  store_dir: {{.StoreDir}}
}

# Browsers connect here with their vended JWTs. Put TLS on a reverse proxy in
# front, or configure tls {} here and hand out wss:// URLs.
websocket {
  listen: {{.WSAddr}}
  no_tls: true
  compression: true
{{- if .Origins}}
  allowed_origins: {{.Origins}}
{{- end}}
}

# Operator mode: only JWT-authenticated users of the accounts below connect.
operator: {{.Operator}}
system_account: {{.SystemAccount}}
resolver: MEMORY
resolver_preload: {
  # SYS
  {{.SystemAccount}}: {{.SystemJWT}}
  # chat: natter's users, with the TVM's scoped signing key
  {{.ChatAccount}}: {{.ChatJWT}}
}
`))

// InitExternal writes what a stock nats-server and natter need to run apart:
// the key seeds (reused when present, so running it again keeps issued tokens
// valid), the operator JWT, a server configuration with the accounts
// preloaded, natter's service creds and an env file for natter.
func InitExternal(cfg ExternalConfig) (*ExternalFiles, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Limits = cfg.Limits.withDefaults()
	// The server config and natter.env must name the same ports, so a port
	// the server would pick at random is refused here.
	host, port, err := fixedAddr(cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("nats address: %w", err)
	}
	wsHost, wsPort, err := fixedAddr(cfg.WSAddr)
	if err != nil {
		return nil, fmt.Errorf("websocket address: %w", err)
	}
	if cfg.WSURL == "" {
		if unspecifiedHost(wsHost) {
			wsHost = "localhost"
		}
		cfg.WSURL = "ws://" + net.JoinHostPort(wsHost, strconv.Itoa(wsPort))
	}
	if unspecifiedHost(host) {
		host = "127.0.0.1"
	}
	natsURL := "nats://" + net.JoinHostPort(host, strconv.Itoa(port))
	keys, err := LoadOrCreateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		return nil, err
	}
	claims, err := keys.Claims(cfg.Limits)
	if err != nil {
		return nil, err
	}
	files := &ExternalFiles{
		ServerConf: filepath.Join(dir, "nats-server.conf"),
		Creds:      filepath.Join(dir, "natter.creds"),
		SigningKey: filepath.Join(dir, "keys", "tvm.nk"),
		Env:        filepath.Join(dir, "natter.env"),
	}
	env, err := envFile([][2]string{
		{"NATTER_NATS_URL", natsURL},
		{"NATTER_NATS_CREDS", files.Creds},
		{"NATTER_SIGNING_KEY", files.SigningKey},
		{"NATTER_WS_URLS", cfg.WSURL},
	})
	if err != nil {
		return nil, err
	}
	operator := filepath.Join(dir, "operator.jwt")
	if err := os.WriteFile(operator, []byte(claims.Operator+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write operator: %w", err)
	}
	var conf bytes.Buffer
	err = serverConf.Execute(&conf, map[string]string{
		"Conf":       strconv.Quote(files.ServerConf),
		"ClientAddr": strconv.Quote(cfg.ClientAddr),
		"WSAddr":     strconv.Quote(cfg.WSAddr),
		// nats-server keeps its store in a "jetstream" folder under
		// store_dir, so this puts it in <dir>/jetstream.
		"StoreDir":      strconv.Quote(dir),
		"Operator":      strconv.Quote(operator),
		"SystemAccount": publicKey(keys.System),
		"SystemJWT":     claims.System,
		"ChatAccount":   keys.ChatAccount(),
		"ChatJWT":       claims.Chat,
		"Origins":       quoteList(cfg.AllowedOrigins),
	})
	if err != nil {
		return nil, err
	}
	// The account JWTs are public, but the file sits beside the seeds.
	if err := WriteSecret(files.ServerConf, conf.Bytes()); err != nil {
		return nil, err
	}
	creds, err := keys.UserCreds("natter", 0)
	if err != nil {
		return nil, err
	}
	if err := WriteSecret(files.Creds, creds); err != nil {
		return nil, err
	}
	if err := WriteSecret(files.Env, env); err != nil {
		return nil, err
	}
	return files, nil
}

// fixedAddr parses host:port and insists on a port between 1 and 65535.
func fixedAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q needs a fixed port between 1 and 65535", addr)
	}
	return host, port, nil
}

// unspecifiedHost reports whether host listens on every interface, and so
// cannot be dialled as it is.
func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// envFile renders KEY=VALUE lines that both a POSIX shell ("set -a; . FILE")
// and natter's .env reader take. A value with characters the shell would
// split or expand is single-quoted; one holding a single quote cannot be
// written safely and is refused.
func envFile(vars [][2]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# natter settings for the nats-server in this folder; copy to .env or export them.\n")
	for _, kv := range vars {
		v := kv[1]
		switch {
		case strings.ContainsAny(v, "'\n\r"):
			return nil, fmt.Errorf("%s=%q: the value cannot be written to an env file", kv[0], v)
		case strings.ContainsFunc(v, func(r rune) bool { return !strings.ContainsRune(envSafe, r) }):
			v = "'" + v + "'"
		}
		fmt.Fprintf(&b, "%s=%s\n", kv[0], v)
	}
	return b.Bytes(), nil
}

// envSafe are the characters a shell takes literally in an unquoted word.
const envSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:@%+="

// quoteList renders list as a configuration array, or "" when empty.
func quoteList(list []string) string {
	if len(list) == 0 {
		return ""
	}
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
