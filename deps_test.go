package natter_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDependenciesPointInward keeps the layering honest: cmd → tvm →
// gateway → natter. The gateway never speaks HTTP, the TVM never embeds the
// NATS server, and the wire contract depends on neither.
func TestDependenciesPointInward(t *testing.T) {
	cases := []struct {
		pkg       string
		forbidden []string
	}{
		{".", []string{"github.com/natterchat/natter/tvm", "github.com/natterchat/natter/gateway", "github.com/labstack/echo", "github.com/nats-io/nats-server", "github.com/nats-io/nats.go"}},
		{"./gateway", []string{"github.com/natterchat/natter/tvm", "github.com/labstack/echo", "net/http/httptest"}},
		{"./tvm", []string{"github.com/nats-io/nats-server", "github.com/natterchat/natter/gateway"}},
		// Browsers and Go clients must agree byte for byte: the package is
		// the standard library's AES-GCM and nothing else.
		{"./sealed", []string{"github.com/nats-io", "github.com/labstack", "golang.org/x", "github.com/natterchat/natter/gateway", "github.com/natterchat/natter/client"}},
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, tc := range cases {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command(goBin, "list", "-deps", tc.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tc.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s imports %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}
