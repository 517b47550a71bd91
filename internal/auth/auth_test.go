package auth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestHashesBounded: password hashes beyond MaxConcurrentHashes wait, and
// those that cannot start within HashWait get ErrBusy instead of piling up
// (120 concurrent signups held 2.4 GB of argon2 memory).
func TestHashesBounded(t *testing.T) {
	cfg := auth.NewDefaultConfig()
	cfg.JWTSecret = []byte(strings.Repeat("k", 32))
	cfg.Hasher = auth.HashParams{MemoryKiB: 8 * 1024, Time: 3, Threads: 1}
	cfg.MaxConcurrentHashes = 1
	cfg.HashWait = time.Millisecond
	s, err := auth.NewService(users{}, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var busy, created atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			_, err := s.Signup(context.Background(), fmt.Sprintf("u%d@example.com", i), "correct horse battery")
			switch {
			case errors.Is(err, auth.ErrBusy):
				busy.Add(1)
			case err == nil:
				created.Add(1)
			default:
				t.Errorf("Signup = %v", err)
			}
		})
	}
	wg.Wait()
	if busy.Load() == 0 || created.Load() == 0 {
		t.Errorf("%d signups created, %d busy; want some of each with one hash at a time", created.Load(), busy.Load())
	}
}

// users is a Users that stores nothing.
type users struct{}

func (users) CreateUser(context.Context, *auth.User) error { return nil }
func (users) UserByEmail(context.Context, string) (*auth.User, error) {
	return nil, auth.ErrUnknownUser
}
func (users) UserByID(context.Context, string) (*auth.User, error) { return nil, auth.ErrUnknownUser }

// TestEmailsNormalized: an address typed in another Unicode form is the
// same account.
func TestEmailsNormalized(t *testing.T) {
	cfg := auth.NewDefaultConfig()
	cfg.JWTSecret = []byte(strings.Repeat("k", 32))
	cfg.Hasher = auth.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}
	store := &memUsers{byEmail: map[string]*auth.User{}}
	s, err := auth.NewService(store, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Signup(ctx, "José@Example.com", "correct horse battery"); err != nil { // NFC é
		t.Fatal(err)
	}
	for _, same := range []string{"jose\u0301@example.com", "JOSÉ@EXAMPLE.COM"} { // NFD é, upper case
		if _, err := s.Signup(ctx, same, "correct horse battery"); !errors.Is(err, auth.ErrEmailTaken) {
			t.Errorf("Signup(%q) after José@Example.com = %v, want ErrEmailTaken", same, err)
		}
	}
	if _, err := s.Signup(ctx, "\u017Fam@example.com", "correct horse battery"); err != nil { // long s
		t.Fatal(err)
	}
	if _, err := s.Signup(ctx, "sam@example.com", "correct horse battery"); !errors.Is(err, auth.ErrEmailTaken) {
		t.Errorf("Signup(sam@) after \u017Fam@ = %v, want ErrEmailTaken", err)
	}
}

// memUsers keeps users in memory, keyed by their stored email.
type memUsers struct{ byEmail map[string]*auth.User }

func (m *memUsers) CreateUser(_ context.Context, u *auth.User) error {
	if m.byEmail[u.Email] != nil {
		return auth.ErrEmailTaken
	}
	m.byEmail[u.Email] = u
	return nil
}
func (m *memUsers) UserByEmail(_ context.Context, email string) (*auth.User, error) {
	if u := m.byEmail[email]; u != nil {
		return u, nil
	}
	return nil, auth.ErrUnknownUser
}
func (m *memUsers) UserByID(context.Context, string) (*auth.User, error) {
	return nil, auth.ErrUnknownUser
}
