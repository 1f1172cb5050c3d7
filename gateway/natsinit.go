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

// ClusterConfig describes the NATS cluster InitCluster writes configurations for.
type ClusterConfig struct {
	Dir            string   // where everything is written; made absolute
	ClientAddrs    []string // host:port of each node's client listener; len is the node count (at least 3)
	ClusterAddrs   []string // host:port of each node's route listener
	WSAddrs        []string // host:port of each node's WebSocket listener
	WSURLs         []string // WebSocket URLs handed to browsers; derived from WSAddrs when empty
	AllowedOrigins []string
	Limits         UserLimits
}

// ClusterFiles are what InitCluster wrote.
type ClusterFiles struct {
	ServerConfs []string // node i: nats-server -c ServerConfs[i]
	StoreDirs   []string // node i's JetStream store_dir
	Creds       string   // natter's service user
	SigningKey  string   // the TVM's scoped signing key seed
	Env         string   // NATTER_* settings for natter (NATS_URL with every node, WS_URLS, REPLICAS=3, creds, signing key)
	NATSURLs    []string // nats://host:port of each node
	WSURLs      []string
}

// MinClusterNodes is the smallest cluster InitCluster configures: three
// nodes keep a majority, and so JetStream, through the loss of one.
const MinClusterNodes = 3

// ClusterReplicas is the replication InitCluster sets for natter's buckets:
// each is kept on three nodes, whatever the cluster's size.
const ClusterReplicas = 3

// clusterName names the cluster in every node's configuration.
const clusterName = "natter"

var serverConf = template.Must(template.New("conf").Parse(`# nats-server configuration for natter, written by "natter nats init".
# Run: nats-server -c {{.Conf}}
server_name: {{.ServerName}}
listen: {{.ClientAddr}}
{{- if .Routes}}

# The nodes of the cluster connect to each other here. Routes are not
# authenticated: keep this listener on a private network.
cluster {
  name: {{.ClusterName}}
  listen: {{.ClusterAddr}}
  routes: [
{{- range .Routes}}
    {{.}}
{{- end}}
  ]
}
{{- end}}

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

// natsNode is one nats-server that InitExternal or InitCluster configures.
type natsNode struct {
	name        string // server_name
	conf        string // path of its configuration file
	storeDir    string // store_dir; nats-server keeps JetStream in <storeDir>/jetstream
	clientAddr  string // listen
	clusterAddr string // cluster listen; "" for a server on its own
	wsAddr      string // websocket listen
	natsURL     string // how natter reaches it
	route       string // how the other nodes reach it; "" for a server on its own
	wsURL       string // how browsers reach it
}

// newNode checks a node's listeners and derives the URLs others reach them
// by. The server configurations and natter.env must name the same ports, so
// a port the server would pick at random is refused.
func newNode(n natsNode) (natsNode, error) {
	host, port, err := fixedAddr(n.clientAddr)
	if err != nil {
		return n, fmt.Errorf("nats address: %w", err)
	}
	n.natsURL = dialURL("nats", host, "127.0.0.1", port)
	if n.clusterAddr != "" {
		host, port, err := fixedAddr(n.clusterAddr)
		if err != nil {
			return n, fmt.Errorf("cluster address: %w", err)
		}
		n.route = dialURL("nats-route", host, "127.0.0.1", port)
	}
	wsHost, wsPort, err := fixedAddr(n.wsAddr)
	if err != nil {
		return n, fmt.Errorf("websocket address: %w", err)
	}
	if n.wsURL == "" {
		n.wsURL = dialURL("ws", wsHost, "localhost", wsPort)
	}
	return n, nil
}

// dialURL is scheme://host:port, with orElse for a host that listens on
// every interface.
func dialURL(scheme, host, orElse string, port int) string {
	if unspecifiedHost(host) {
		host = orElse
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// checkNodes refuses listeners that would take each other's port, and nodes
// that natter, browsers or the other nodes could not tell apart.
func checkNodes(nodes []natsNode) error {
	urls := map[string]bool{}
	for _, n := range nodes {
		for _, u := range []string{n.natsURL, n.route, n.wsURL} {
			if u != "" && urls[u] {
				return fmt.Errorf("two nodes are both reached at %s: give each node its own host or port", u)
			}
			urls[u] = true
		}
	}
	for i, n := range nodes {
		for j, m := range nodes[:i+1] {
			for x, a := range n.listeners() {
				for y, b := range m.listeners() {
					if i == j && y >= x {
						break // each pair of one node's listeners once
					}
					if sameListener(a, b, i == j) {
						return fmt.Errorf("listen addresses %s and %s take the same port", b, a)
					}
				}
			}
		}
	}
	return nil
}

// listeners are the node's listen addresses.
func (n natsNode) listeners() []string {
	if n.clusterAddr == "" {
		return []string{n.clientAddr, n.wsAddr}
	}
	return []string{n.clientAddr, n.clusterAddr, n.wsAddr}
}

// sameListener reports whether two host:port listeners, which fixedAddr
// has accepted, take the same port. Listeners that name one host do; one
// on every interface takes the port on its own machine only, and nodes may
// be on machines of their own.
func sameListener(a, b string, oneMachine bool) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	switch {
	case pa != pb:
		return false
	case unspecifiedHost(ha) || unspecifiedHost(hb):
		return oneMachine
	}
	return ha == hb
}

// natsSetup is what both forms of "natter nats init" write into dir.
type natsSetup struct {
	dir      string
	nodes    []natsNode
	origins  []string
	limits   UserLimits
	replicas int // NATTER_REPLICAS in natter.env; 0 leaves it to natter
}

// setupFiles are the paths writeSetup wrote besides the server configurations.
type setupFiles struct {
	creds, signingKey, env string
}

// writeSetup writes the key seeds (reused when present, so running init
// again keeps issued tokens valid), the operator JWT, each node's server
// configuration with the accounts preloaded, natter's service creds and an
// env file for natter that names every node.
func writeSetup(s natsSetup) (*setupFiles, error) {
	if err := checkNodes(s.nodes); err != nil {
		return nil, err
	}
	files := &setupFiles{
		creds:      filepath.Join(s.dir, "natter.creds"),
		signingKey: filepath.Join(s.dir, "keys", "tvm.nk"),
		env:        filepath.Join(s.dir, "natter.env"),
	}
	var natsURLs, wsURLs []string
	for _, n := range s.nodes {
		natsURLs = append(natsURLs, n.natsURL)
		wsURLs = append(wsURLs, n.wsURL)
	}
	vars := [][2]string{
		{"NATTER_NATS_URL", strings.Join(natsURLs, ",")},
		{"NATTER_NATS_CREDS", files.creds},
		{"NATTER_SIGNING_KEY", files.signingKey},
		{"NATTER_WS_URLS", strings.Join(wsURLs, ",")},
	}
	if s.replicas > 0 {
		vars = append(vars, [2]string{"NATTER_REPLICAS", strconv.Itoa(s.replicas)})
	}
	// Rendered before anything is written: a value it refuses leaves no
	// folder behind.
	about := "the nats-server in this folder"
	if len(s.nodes) > 1 {
		about = "the cluster of nats-servers in this folder"
	}
	env, err := envFile(about, vars)
	if err != nil {
		return nil, err
	}
	keys, err := LoadOrCreateKeys(filepath.Join(s.dir, "keys"))
	if err != nil {
		return nil, err
	}
	claims, err := keys.Claims(s.limits.withDefaults())
	if err != nil {
		return nil, err
	}
	operator := filepath.Join(s.dir, "operator.jwt")
	if err := os.WriteFile(operator, []byte(claims.Operator+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write operator: %w", err)
	}
	var routes []string
	for _, n := range s.nodes {
		if n.route != "" {
			routes = append(routes, strconv.Quote(n.route))
		}
	}
	for _, n := range s.nodes {
		var conf bytes.Buffer
		err = serverConf.Execute(&conf, map[string]any{
			"Conf":          strconv.Quote(n.conf),
			"ServerName":    n.name,
			"ClientAddr":    strconv.Quote(n.clientAddr),
			"ClusterName":   clusterName,
			"ClusterAddr":   strconv.Quote(n.clusterAddr),
			"Routes":        routes,
			"WSAddr":        strconv.Quote(n.wsAddr),
			"StoreDir":      strconv.Quote(n.storeDir),
			"Operator":      strconv.Quote(operator),
			"SystemAccount": publicKey(keys.System),
			"SystemJWT":     claims.System,
			"ChatAccount":   keys.ChatAccount(),
			"ChatJWT":       claims.Chat,
			"Origins":       quoteList(s.origins),
		})
		if err != nil {
			return nil, err
		}
		// The account JWTs are public, but the file sits beside the seeds.
		if err := WriteSecret(n.conf, conf.Bytes()); err != nil {
			return nil, err
		}
	}
	creds, err := keys.UserCreds("natter", 0)
	if err != nil {
		return nil, err
	}
	if err := WriteSecret(files.creds, creds); err != nil {
		return nil, err
	}
	if err := WriteSecret(files.env, env); err != nil {
		return nil, err
	}
	return files, nil
}

// InitExternal writes what a stock nats-server and natter need to run apart:
// the key seeds (reused when present, so running it again keeps issued tokens
// valid), the operator JWT, a server configuration with the accounts
// preloaded, natter's service creds and an env file for natter.
func InitExternal(cfg ExternalConfig) (*ExternalFiles, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	node, err := newNode(natsNode{
		name: "natter-nats",
		conf: filepath.Join(dir, "nats-server.conf"),
		// nats-server keeps its store in a "jetstream" folder under
		// store_dir, so this puts it in <dir>/jetstream.
		storeDir:   dir,
		clientAddr: cfg.ClientAddr,
		wsAddr:     cfg.WSAddr,
		wsURL:      cfg.WSURL,
	})
	if err != nil {
		return nil, err
	}
	w, err := writeSetup(natsSetup{dir: dir, nodes: []natsNode{node}, origins: cfg.AllowedOrigins, limits: cfg.Limits})
	if err != nil {
		return nil, err
	}
	return &ExternalFiles{ServerConf: node.conf, Creds: w.creds, SigningKey: w.signingKey, Env: w.env}, nil
}

// InitCluster writes what a cluster of stock nats-servers and any number of
// natter processes need: the same keys, operator JWT, creds and env file as
// InitExternal, and a configuration per node, natter-nats-<i> in
// nats-server-<i>.conf with its store in node-<i>/, whose routes name
// every node. natter.env names every node and sets NATTER_REPLICAS=3.
func InitCluster(cfg ClusterConfig) (*ClusterFiles, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	n := len(cfg.ClientAddrs)
	if n < MinClusterNodes {
		return nil, fmt.Errorf("a cluster needs at least %d nodes, got %d client addresses", MinClusterNodes, n)
	}
	for _, l := range []struct {
		what  string
		count int
	}{{"cluster (route) addresses", len(cfg.ClusterAddrs)}, {"websocket addresses", len(cfg.WSAddrs)}} {
		if l.count != n {
			return nil, fmt.Errorf("%d nodes but %d %s: give one per node", n, l.count, l.what)
		}
	}
	if len(cfg.WSURLs) != 0 && len(cfg.WSURLs) != n {
		return nil, fmt.Errorf("%d nodes but %d websocket URLs: give one per node, or none to derive them", n, len(cfg.WSURLs))
	}
	files := &ClusterFiles{}
	nodes := make([]natsNode, n)
	for i := range nodes {
		node := natsNode{
			name:        "natter-nats-" + strconv.Itoa(i),
			conf:        filepath.Join(dir, "nats-server-"+strconv.Itoa(i)+".conf"),
			storeDir:    filepath.Join(dir, "node-"+strconv.Itoa(i)),
			clientAddr:  cfg.ClientAddrs[i],
			clusterAddr: cfg.ClusterAddrs[i],
			wsAddr:      cfg.WSAddrs[i],
		}
		if len(cfg.WSURLs) > 0 {
			node.wsURL = cfg.WSURLs[i]
		}
		if nodes[i], err = newNode(node); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		files.ServerConfs = append(files.ServerConfs, nodes[i].conf)
		files.StoreDirs = append(files.StoreDirs, nodes[i].storeDir)
		files.NATSURLs = append(files.NATSURLs, nodes[i].natsURL)
		files.WSURLs = append(files.WSURLs, nodes[i].wsURL)
	}
	w, err := writeSetup(natsSetup{dir: dir, nodes: nodes, origins: cfg.AllowedOrigins, limits: cfg.Limits, replicas: ClusterReplicas})
	if err != nil {
		return nil, err
	}
	files.Creds, files.SigningKey, files.Env = w.creds, w.signingKey, w.env
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

// envFile renders a comment on what the settings are about, then KEY=VALUE
// lines that both a POSIX shell ("set -a; . FILE") and natter's .env reader
// take. A value with characters the shell would
// split or expand is single-quoted; one holding a single quote cannot be
// written safely and is refused.
func envFile(about string, vars [][2]string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# natter settings for %s; copy to .env or export them.\n", about)
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
