package auth_test

import (
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/auth"
)

func TestPasswordHash(t *testing.T) {
	p := auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	h, err := auth.HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	if !auth.VerifyPassword(h, "correct horse") {
		t.Error("VerifyPassword rejects the right password")
	}
	for _, bad := range []string{"correct horsE", "", "correct horse "} {
		if auth.VerifyPassword(h, bad) {
			t.Errorf("VerifyPassword accepts %q", bad)
		}
	}
	if auth.VerifyPassword("not-a-hash", "x") {
		t.Error("VerifyPassword accepts a malformed hash")
	}
}

func TestVerifyRejectsGarbage(t *testing.T) {
	cfg := auth.NewDefaultConfig()
	cfg.JWTSecret = []byte(strings.Repeat("k", 32))
	cfg.Hasher = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	s, err := auth.NewService(nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", strings.Repeat("x", 5000)} {
		if _, err := s.Verify(tok); err == nil {
			t.Errorf("Verify(%.20q) accepted", tok)
		}
	}
	if _, err := auth.NewService(nil, nil, auth.Config{JWTSecret: []byte("short")}); err == nil {
		t.Error("NewService accepted a 5-byte secret")
	}
}
