package gateway

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
)

// ExternalConfig describes the nats-server that InitExternal writes a
// configuration for.
type ExternalConfig struct {
	Dir        string // where everything is written; made absolute
	ClientAddr string // host:port of the NATS client listener
	WSAddr     string // host:port of the WebSocket listener
	WSURL      string // WebSocket URL handed to browsers; derived from WSAddr when empty
	Limits     UserLimits
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
	if cfg.Limits == (UserLimits{}) {
		cfg.Limits = DefaultUserLimits
	}
	if cfg.WSURL == "" {
		host, port, err := splitAddr(cfg.WSAddr)
		if err != nil {
			return nil, fmt.Errorf("websocket address: %w", err)
		}
		if host == "0.0.0.0" {
			host = "localhost"
		}
		cfg.WSURL = "ws://" + host + ":" + strconv.Itoa(port)
	}
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
	operator := filepath.Join(dir, "operator.jwt")
	if err := os.WriteFile(operator, []byte(claims.Operator+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write operator: %w", err)
	}
	var conf bytes.Buffer
	err = serverConf.Execute(&conf, map[string]string{
		"Conf":          strconv.Quote(files.ServerConf),
		"ClientAddr":    strconv.Quote(cfg.ClientAddr),
		"WSAddr":        strconv.Quote(cfg.WSAddr),
		"StoreDir":      strconv.Quote(filepath.Join(dir, "jetstream")),
		"Operator":      strconv.Quote(operator),
		"SystemAccount": publicKey(keys.System),
		"SystemJWT":     claims.System,
		"ChatAccount":   keys.ChatAccount(),
		"ChatJWT":       claims.Chat,
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
	host, port, _ := splitAddr(cfg.ClientAddr)
	if host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	env := fmt.Sprintf("# natter settings for the nats-server in this folder; copy to .env or export them.\n"+
		"NATTER_NATS_URL=nats://%s:%d\nNATTER_NATS_CREDS=%s\nNATTER_SIGNING_KEY=%s\nNATTER_WS_URLS=%s\n",
		host, port, files.Creds, files.SigningKey, cfg.WSURL)
	if err := WriteSecret(files.Env, []byte(env)); err != nil {
		return nil, err
	}
	return files, nil
}
