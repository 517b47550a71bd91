package client_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedUpToDate: client.gen.go is what oapi-codegen makes of the
// OpenAPI document now; a change to either without `make generate` fails.
func TestGeneratedUpToDate(t *testing.T) {
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "client.gen.go")
	tmpCfg := strings.Replace(string(cfg), "output: client.gen.go", "output: "+out, 1)
	if tmpCfg == string(cfg) {
		t.Fatal("oapi-codegen.yaml has no line output: client.gen.go")
	}
	cfgPath := filepath.Join(t.TempDir(), "oapi-codegen.yaml")
	if err := os.WriteFile(cfgPath, []byte(tmpCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The same command as the go:generate line, pinned by go.mod's tool
	// directive.
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", cfgPath, "../../internal/httpapi/openapi.yaml")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("client.gen.go differs from what internal/httpapi/openapi.yaml generates: run make generate")
	}
}
