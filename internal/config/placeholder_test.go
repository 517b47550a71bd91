package config

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestEnvExampleValuesInStep: every value of .env.example is one that
// placeholder knows as such, word or no word.
func TestEnvExampleValuesInStep(t *testing.T) {
	f, err := os.Open("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || v == "" {
			continue
		}
		if !slices.Contains(envExampleValues, v) {
			t.Errorf(".env.example %s=%s is not in envExampleValues", name, v)
		}
	}
}

func TestPlaceholder(t *testing.T) {
	for v, want := range map[string]bool{
		"change-me-s3-secret-key":                   true,
		"Change-Me-Later-Change-Me-Later-Change-Me": true,
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz":      true,
		"éééééééééééééééééééééééééééééééééé":        true,
		"k3Jv9QeT2mXw7LpZ4sRb8NcY1hUa6GdF0oEi5":     false,
	} {
		if got := placeholder(v) != ""; got != want {
			t.Errorf("placeholder(%q) = %q, want a reason: %v", v, placeholder(v), want)
		}
	}
}
