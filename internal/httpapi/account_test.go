package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/eventstream"
	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

const password = "correct horse battery" // harness.user's

type accountJSON struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	CreatedAt string `json:"created_at"`
	Usage     struct {
		Images         int64 `json:"images"`
		Bytes          int64 `json:"bytes"`
		PendingUploads int   `json:"pending_uploads"`
	} `json:"usage"`
	Quota struct {
		Images *int64 `json:"images"`
		Bytes  *int64 `json:"bytes"`
	} `json:"quota"`
}

func (h *harness) account(token string) accountJSON {
	h.t.Helper()
	r := h.do(http.MethodGet, "/v1/account", token, "", nil)
	if r.Status != http.StatusOK {
		h.t.Fatalf("get account: %d %s", r.Status, r.Body)
	}
	var a accountJSON
	r.json(h.t, &a)
	return a
}

func (h *harness) deleteAccount(token, password string) response {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"password": password})
	return h.do(http.MethodDelete, "/v1/account", token, "application/json", bytes.NewReader(b))
}

// signupTokens signs up and logs in, returning both tokens.
func (h *harness) signupTokens(email string) (access, refresh string) {
	h.t.Helper()
	access = h.user(email)
	r := h.postJSON("/v1/auth/login", "", map[string]string{"email": email, "password": password})
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	r.json(h.t, &tok)
	return access, tok.RefreshToken
}

// TestAccountUsage: GET /v1/account shows the user and what it stores
// against the quota, and null for a bound that is not set.
func TestAccountUsage(t *testing.T) {
	h := newHarness(t, func(s *settings) {
		s.Image.QuotaImages = 5
		s.Image.MaxUploadBytes, s.Image.PartSize = 20<<20, 5<<20
	})
	token := h.user("usage@example.com")
	a := h.account(token)
	if a.ID != h.userID(token) || a.Email != "usage@example.com" || a.Role != "user" || a.CreatedAt == "" ||
		a.Usage.Images != 0 || a.Usage.Bytes != 0 || a.Usage.PendingUploads != 0 ||
		a.Quota.Images == nil || *a.Quota.Images != 5 || a.Quota.Bytes != nil {
		t.Errorf("new account: %+v; want no usage, quota 5 images and no bound on bytes", a)
	}
	var stored int64
	for i := range 2 {
		src := testenv.JPEG(t, 200+i, 100, 1)
		if r := h.upload(token, "a.jpg", src); r.Status != http.StatusAccepted {
			t.Fatalf("upload: %d %s", r.Status, r.Body)
		}
		stored += int64(len(src))
	}
	h.beginUpload(token, "big.jpg", 6<<20, "image/jpeg")
	h.upload(h.user("someone-else@example.com"), "b.jpg", testenv.JPEG(t, 300, 200, 1))
	a = h.account(token)
	if a.Usage.Images != 2 || a.Usage.Bytes != stored || a.Usage.PendingUploads != 1 {
		t.Errorf("after 2 uploads of %d bytes and a direct upload begun: usage %+v", stored, a.Usage)
	}
}

// holding lists the ids of what a user holds, from the API's own answers:
// its images, direct uploads, webhooks, deliveries and their events.
type holding struct {
	userID string
	ids    []string
}

// fill gives a user something of everything an account can hold: two
// processed images (one uploaded with an Idempotency-Key), a webhook whose
// deliveries went out, a multipart direct upload with a part sent, a
// single-PUT direct upload whose object landed and a tus upload half-way,
// none completed; its event stream has the images' events, its refresh
// token is stored.
func (h *harness) fill(token string) holding {
	h.t.Helper()
	hd := holding{userID: h.userID(token)}
	rcv := newReceiver(h.t)
	r := h.postJSON("/v1/webhooks", token, map[string]any{"url": rcv.srv.URL, "events": []string{"image.processed"}})
	var sub subscriptionJSON
	r.json(h.t, &sub)
	rcv.secret = sub.Secret
	hd.ids = append(hd.ids, sub.ID)
	var a, b imageJSON
	h.upload(token, "a.jpg", testenv.JPEG(h.t, 320, 240, 1)).json(h.t, &a)
	h.uploadWithKey(token, "key-1", "b.jpg", testenv.JPEG(h.t, 321, 240, 1)).json(h.t, &b)
	for _, img := range []imageJSON{a, b} {
		if done := h.waitFor(token, img.ID); done.Status != "done" {
			h.t.Fatalf("image %s: %s", img.ID, done.Status)
		}
		hd.ids = append(hd.ids, img.ID)
	}
	testenv.WaitUntil(h.t, 10*time.Second, "both webhook deliveries", func() bool { return len(rcv.requests()) == 2 })
	var dl struct {
		Items []struct {
			ID      string `json:"id"`
			EventID string `json:"event_id"`
		} `json:"items"`
	}
	h.do(http.MethodGet, "/v1/webhooks/"+sub.ID+"/deliveries", token, "", nil).json(h.t, &dl)
	for _, d := range dl.Items {
		hd.ids = append(hd.ids, d.ID, d.EventID)
	}

	mp := h.beginUpload(token, "big.jpg", 6<<20, "image/jpeg")
	if status, _ := putObject(h.t, h.signParts(token, mp.ID, 1)[1], nil, bytes.Repeat([]byte{1}, 5<<20)); status != http.StatusOK {
		h.t.Fatalf("PUT part 1: %d", status)
	}
	src := testenv.JPEG(h.t, 100, 80, 1)
	put := h.beginUpload(token, "small.jpg", len(src), "image/jpeg")
	if status, _ := putObject(h.t, put.Put.URL, put.Put.Headers, src); status != http.StatusOK {
		h.t.Fatalf("PUT: %d", status)
	}
	tus := h.tusCreate(token, 6<<20, "resumable.jpg", "image/jpeg")
	if r := h.tusPatch(token, tus, 0, testenv.PaddedJPEG(h.t, 6<<20)[:5<<20+10]); r.Status != http.StatusNoContent {
		h.t.Fatalf("tus PATCH of the first 5 MiB: %d %s", r.Status, r.Body)
	}
	tusID := strings.Split(strings.Split(tus, "/")[4], "+")[0]
	hd.ids = append(hd.ids, mp.ID, put.ID, tusID)
	left := h.leftOf(hd)
	multipart := slices.DeleteFunc(slices.Clone(left), func(l string) bool { return !strings.HasPrefix(l, "multipart upload") })
	if len(left) < 10 || len(multipart) != 2 {
		h.t.Fatalf("the account holds only %v: fill did not fill it (2 multipart uploads in progress wanted)", left)
	}
	return hd
}

// leftOf describes what the service still holds of a user: rows in any
// table naming the user or one of its ids, objects under its prefixes,
// multipart uploads in progress there, its event stream.
func (h *harness) leftOf(hd holding) []string {
	h.t.Helper()
	ctx := context.Background()
	cfg := gormstore.NewDefaultConfig()
	cfg.URL = h.dbURL
	db, err := gormstore.Open(ctx, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	}()
	var left []string
	for _, id := range append([]string{hd.userID}, hd.ids...) {
		for table, n := range testenv.RowsMentioning(h.t, db, id) {
			left = append(left, fmt.Sprintf("%d rows of %s naming %s", n, table, id))
		}
	}
	for _, prefix := range image.UserPrefixes(hd.userID) {
		for _, k := range h.objects(prefix) {
			left = append(left, "object "+k)
		}
	}
	for _, id := range hd.ids { // the uploads' keys among them
		key := image.OriginalKey(hd.userID, id)
		uploads, err := h.blobs.MultipartUploads(ctx, key)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, u := range uploads {
			left = append(left, "multipart upload "+u+" of "+key)
		}
	}
	if n, err := h.rdb.Exists(ctx, eventstream.NewDefaultConfig().Prefix+"user:"+hd.userID).Result(); err != nil || n != 0 {
		left = append(left, fmt.Sprintf("event stream (%d, %v)", n, err))
	}
	slices.Sort(left)
	return left
}

// assertClosed checks that an account's tokens, refresh token and
// password are all refused.
func (h *harness) assertClosed(email, access, refresh string) {
	h.t.Helper()
	for _, path := range []string{"/v1/images", "/v1/account"} {
		if r := h.do(http.MethodGet, path, access, "", nil); r.Status != http.StatusUnauthorized || r.errorCode(h.t) != "invalid_token" {
			h.t.Errorf("GET %s with a deleted account's token: %d %s, want 401 invalid_token", path, r.Status, r.Body)
		}
	}
	if r := h.postJSON("/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); r.Status != http.StatusUnauthorized {
		h.t.Errorf("refresh of a deleted account: %d %s, want 401", r.Status, r.Body)
	}
	if r := h.postJSON("/v1/auth/login", "", map[string]string{"email": email, "password": password}); r.Status != http.StatusUnauthorized || r.errorCode(h.t) != "invalid_credentials" {
		h.t.Errorf("login to a deleted account: %d %s, want 401 invalid_credentials", r.Status, r.Body)
	}
}

// TestDeleteAccount: a wrong password deletes nothing; the right one
// closes the account and leaves no row naming it and no object, including
// the multipart uploads of a direct upload and a tus upload in progress; its tokens are refused afterwards;
// another user keeps everything; the email can sign up again.
func TestDeleteAccount(t *testing.T) {
	h := newHarness(t, func(s *settings) { s.Image.MaxUploadBytes, s.Image.PartSize = 20<<20, 5<<20 })
	access, refresh := h.signupTokens("gone@example.com")
	gone := h.fill(access)
	other := h.user("stays@example.com")
	var kept imageJSON
	h.upload(other, "c.jpg", testenv.JPEG(t, 300, 200, 1)).json(t, &kept)
	h.waitFor(other, kept.ID)

	t.Run("ErrWrongPassword", func(t *testing.T) {
		before := h.leftOf(gone)
		if r := h.deleteAccount(access, "wrong horse battery"); r.Status != http.StatusForbidden || r.errorCode(t) != "invalid_password" {
			t.Errorf("wrong password: %d %s, want 403 invalid_password", r.Status, r.Body)
		}
		if after := h.leftOf(gone); !slices.Equal(after, before) {
			t.Errorf("a refused deletion changed what the account holds:\n%v\nwas\n%v", after, before)
		}
		h.account(access) // still open
	})

	t.Run("OK", func(t *testing.T) {
		if r := h.deleteAccount(access, password); r.Status != http.StatusNoContent {
			t.Fatalf("delete account: %d %s, want 204", r.Status, r.Body)
		}
		if left := h.leftOf(gone); len(left) != 0 {
			t.Errorf("left after the deletion:\n%s", strings.Join(left, "\n"))
		}
		h.assertClosed("gone@example.com", access, refresh)
		if r := h.deleteAccount(access, password); r.Status != http.StatusUnauthorized {
			t.Errorf("delete again: %d %s, want 401", r.Status, r.Body)
		}
	})

	t.Run("OthersKept", func(t *testing.T) {
		if img := h.waitFor(other, kept.ID); img.Status != "done" || len(img.Variants) != 3 {
			t.Errorf("the other user's image: %s with %d variants", img.Status, len(img.Variants))
		}
		otherID := h.userID(other)
		keys := h.objects("")
		if len(keys) != 7 || slices.ContainsFunc(keys, func(k string) bool { return !strings.Contains(k, "/"+otherID+"/") }) {
			t.Errorf("objects left: %v; want the other user's original and 3 variants in 2 formats", keys)
		}
		if r := h.postJSON("/v1/auth/signup", "", map[string]string{"email": "gone@example.com", "password": password}); r.Status != http.StatusCreated {
			t.Errorf("signup with the deleted account's email: %d %s, want 201", r.Status, r.Body)
		}
	})

	t.Run("RateLimited", func(t *testing.T) {
		token := h.user("guessed@example.com")
		for i := range 10 { // LOGIN_RATE_PER_MINUTE
			if r := h.deleteAccount(token, fmt.Sprintf("guess %d!", i)); r.Status != http.StatusForbidden {
				t.Fatalf("guess %d: %d %s, want 403", i+1, r.Status, r.Body)
			}
		}
		if r := h.deleteAccount(token, password); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Errorf("11th attempt in a minute: %d %s, want 429 with Retry-After", r.Status, r.Body)
		}
		h.account(token) // still open
	})
}

// failingVariants is object storage whose deletions under variants/ fail:
// an account's removal stopped half-way.
type failingVariants struct{ image.Blobs }

func (f failingVariants) DeletePrefix(ctx context.Context, prefix string) error {
	if strings.HasPrefix(prefix, "variants/") {
		return errors.New("s3: connection reset")
	}
	return f.Blobs.DeletePrefix(ctx, prefix)
}

// TestDeleteAccountResumes: a deletion that stopped half-way leaves the
// account closed, and is finished by the owner calling again or by the
// reconciler.
func TestDeleteAccountResumes(t *testing.T) {
	ctx := context.Background()
	big := func(s *settings) { s.Image.MaxUploadBytes, s.Image.PartSize = 20<<20, 5<<20 }

	t.Run("OwnerCallsAgain", func(t *testing.T) {
		h := newHarness(t, big)
		access, refresh := h.signupTokens("again@example.com")
		hd := h.fill(access)
		// What a DELETE /v1/account whose S3 failed mid-way did.
		if err := h.store.MarkUserDeleted(ctx, hd.userID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := image.NewPurger(h.store, h.blobs, failingVariants{h.blobs}).PurgeUser(ctx, hd.userID); err == nil {
			t.Fatal("purge with variants failing = nil")
		}
		left := h.leftOf(hd)
		if len(h.objects("originals/")) != 0 || len(h.objects("variants/")) == 0 || len(left) == 0 {
			t.Fatalf("after a purge stopped at the variants: %v; want the originals gone, variants and rows left", left)
		}
		h.assertClosed("again@example.com", access, refresh)
		if r := h.deleteAccount(access, password); r.Status != http.StatusNoContent {
			t.Fatalf("delete again: %d %s, want 204", r.Status, r.Body)
		}
		if left := h.leftOf(hd); len(left) != 0 {
			t.Errorf("left after the second deletion:\n%s", strings.Join(left, "\n"))
		}
	})

	t.Run("Reconciler", func(t *testing.T) {
		h := newHarness(t, big, func(s *settings) {
			s.Auth.DeleteWait = time.Nanosecond // nothing can be removed in time: 202
			s.Auth.ResumeDeleteAfter = time.Millisecond
		})
		access, refresh := h.signupTokens("later@example.com")
		hd := h.fill(access)
		before := h.leftOf(hd)
		if r := h.deleteAccount(access, password); r.Status != http.StatusAccepted {
			t.Fatalf("delete account with no time to finish: %d %s, want 202", r.Status, r.Body)
		}
		h.assertClosed("later@example.com", access, refresh)
		if left := h.leftOf(hd); !slices.Equal(left, before) {
			t.Fatalf("after a 202 with no time to remove anything:\n%v\nwant what was there:\n%v", left, before)
		}
		time.Sleep(2 * time.Millisecond)
		if n, err := h.accounts.Reconcile(ctx); n != 1 || err != nil {
			t.Errorf("Reconcile = %d, %v; want 1 account finished", n, err)
		}
		if left := h.leftOf(hd); len(left) != 0 {
			t.Errorf("left after the reconciler:\n%s", strings.Join(left, "\n"))
		}
	})
}
