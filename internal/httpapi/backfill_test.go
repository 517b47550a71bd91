package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/auth"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// admin signs up email, gives it the admin role and returns its token.
func (h *harness) admin(email string) string {
	h.t.Helper()
	h.user(email)
	if err := h.store.SetRole(context.Background(), email, auth.RoleAdmin); err != nil {
		h.t.Fatal(err)
	}
	r := h.postJSON("/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.json(h.t, &tok)
	return tok.AccessToken
}

// recordedKeys are the object keys of every format of an image's variants,
// as the database has them.
func recordedKeys(t *testing.T, h *harness, id string) []string {
	t.Helper()
	keys := image.Keys(mustImage(t, h, id).Variants)
	slices.Sort(keys)
	return keys
}

// TestReprocessReplacesObjects: variant keys name their content, so a
// reprocessing that makes other bytes (a new quality here) writes new
// keys (a key whose bytes did not change stays), and the old objects are
// gone once it is done.
func TestReprocessReplacesObjects(t *testing.T) {
	h := newHarness(t)
	user := h.user("rep@example.com")
	admin := h.admin("ops@example.com")
	var queued imageJSON
	h.upload(user, "r.jpg", testenv.JPEG(t, 900, 600, 1)).json(t, &queued)
	before := h.waitFor(user, queued.ID)
	old := recordedKeys(t, h, queued.ID)

	h.stopWorker()
	h.workerWith(func(s *settings) { s.Image.Quality, s.Image.WebPQuality = 60, 60 })
	if r := h.do(http.MethodPost, "/v1/images/"+queued.ID+"/reprocess", admin, "", nil); r.Status != http.StatusAccepted {
		t.Fatalf("reprocess: %d %s", r.Status, r.Body)
	}
	after := h.waitFor(user, queued.ID)
	now := recordedKeys(t, h, queued.ID)
	if len(now) != 6 {
		t.Fatalf("keys after reprocess %v, want 3 variants in 2 formats", now)
	}
	for _, k := range now {
		if slices.Contains(old, k) {
			t.Errorf("key %s kept across a reprocess that changed the bytes", k)
		}
	}
	stored := h.objects(image.VariantPrefix(h.userID(user), queued.ID))
	slices.Sort(stored)
	if !slices.Equal(stored, now) {
		t.Errorf("objects %v, want exactly the new set %v (the old ones removed)", stored, now)
	}
	// The stable URLs did not change, and now lead to the new bytes.
	if before.Variants[0].URL != after.Variants[0].URL {
		t.Errorf("stable URL changed across a reprocess: %s, then %s", before.Variants[0].URL, after.Variants[0].URL)
	}
	if _, body, _ := h.fetch(after.Variants[0].URL, ""); int64(len(body)) != after.Variants[0].Bytes {
		t.Errorf("stable URL gives %d bytes, want the new %d", len(body), after.Variants[0].Bytes)
	}
}

// TestBackfill: after VARIANTS (one more) and VARIANT_FORMATS (WebP
// dropped) change, the backfill makes every done image again with the new
// set; until then each image serves its old variants; uploads made
// meanwhile come first; the objects of the replaced sets are removed.
func TestBackfill(t *testing.T) {
	h := newHarness(t)
	user := h.user("back@example.com")
	admin := h.admin("fill@example.com")
	var ids []string
	src := testenv.PhotoJPEG(1600, 1200)
	for range 8 {
		var img imageJSON
		h.upload(user, "b.jpg", src).json(t, &img)
		ids = append(ids, img.ID)
	}
	for _, id := range ids {
		h.waitFor(user, id)
	}
	oldKeys := map[string][]string{}
	for _, id := range ids {
		oldKeys[id] = recordedKeys(t, h, id)
	}

	// The new deployment: its API first, its workers later.
	h.stopWorker()
	newSet := func(s *settings) {
		s.Image.Variants = append(slices.Clone(s.Image.Variants), image.Spec{Name: "tiny", Width: 64, Height: 64})
		s.Image.Formats = []image.Format{image.FormatJPEG}
		s.Queue.Concurrency = 1
	}
	api := h.replicaWith(newSet)
	call := func(method, path, token string) response {
		req, err := http.NewRequest(method, api+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return send(t, h.client, withToken(req, token))
	}
	var st struct {
		Profile  string `json:"profile"`
		Outdated int    `json:"outdated"`
	}
	r := call(http.MethodPost, "/v1/admin/backfill", admin)
	r.json(t, &st)
	if r.Status != http.StatusAccepted || st.Outdated != len(ids) || st.Profile == "" {
		t.Fatalf("start backfill: %d %s, want 202 with %d outdated", r.Status, r.Body, len(ids))
	}
	// Nothing has run yet: the old variants are served as they were.
	var img imageJSON
	call(http.MethodGet, "/v1/images/"+ids[0], user).json(t, &img)
	if len(img.Variants) != 3 || len(img.Variants[0].Formats) != 2 {
		t.Fatalf("before the backfill ran: %d variants, want the old 3 in 2 formats", len(img.Variants))
	}
	if _, body, _ := h.fetch(img.Variants[0].URL, ""); int64(len(body)) != img.Variants[0].Bytes {
		t.Errorf("old variant served %d bytes, want %d", len(body), img.Variants[0].Bytes)
	}
	// An upload made now is processed before the backfill is through.
	var fresh imageJSON
	ct, body := multipartBody(t, "file", "new.jpg", testenv.JPEG(t, 640, 480, 1))
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/images", body)
	req.Header.Set("Content-Type", ct)
	send(t, h.client, withToken(req, user)).json(t, &fresh)

	worker := h.workerWith(newSet)
	call(http.MethodGet, "/v1/images/"+fresh.ID+"?wait=60s", user).json(t, &fresh)
	var stats struct {
		Backfill struct{ Outdated int } `json:"backfill"`
		Queues   map[string]map[string]int
	}
	call(http.MethodGet, "/v1/admin/stats", admin).json(t, &stats)
	if fresh.Status != "done" || len(fresh.Variants) != 4 {
		t.Fatalf("upload made during the backfill: %s with %d variants", fresh.Status, len(fresh.Variants))
	}
	// One worker slot: the upload goes first, the backfill's tasks step
	// aside while it waits, so at most the one that started as the upload
	// finished has run.
	if stats.Backfill.Outdated < len(ids)-1 || stats.Queues["backfill"] == nil {
		t.Errorf("%d of %d images backfilled before an upload made meanwhile was done (stats %+v): uploads do not come first",
			len(ids)-stats.Backfill.Outdated, len(ids), stats)
	}

	// Stopped half-way, its queue lost (a Redis without persistence):
	// started again, it picks up what is left.
	worker.Stop()
	ins := h.queue.Inspector()
	for _, del := range []func(string) (int, error){ins.DeleteAllPendingTasks, ins.DeleteAllRetryTasks, ins.DeleteAllScheduledTasks} {
		if _, err := del("backfill"); err != nil {
			t.Fatal(err)
		}
	}
	call(http.MethodGet, "/v1/admin/stats", admin).json(t, &stats)
	left := stats.Backfill.Outdated
	r = call(http.MethodPost, "/v1/admin/backfill", admin)
	r.json(t, &st)
	if r.Status != http.StatusAccepted || st.Outdated != left || left == 0 {
		t.Fatalf("backfill started again with %d left: %d %s", left, r.Status, r.Body)
	}
	h.workerWith(newSet)
	testenv.WaitUntil(t, 90*time.Second, "backfill done", func() bool {
		call(http.MethodGet, "/v1/admin/stats", admin).json(t, &stats)
		return stats.Backfill.Outdated == 0
	})
	for _, id := range ids {
		var img imageJSON
		call(http.MethodGet, "/v1/images/"+id, user).json(t, &img)
		var names []string
		for _, v := range img.Variants {
			names = append(names, v.Name)
			if len(v.Formats) != 1 || v.Formats[0].ContentType != "image/jpeg" {
				t.Errorf("%s %s: formats %+v, want JPEG alone", id, v.Name, v.Formats)
			}
		}
		if img.Status != "done" || strings.Join(names, ",") != "tiny,small,medium,large" {
			t.Errorf("%s after the backfill: %s with %v", id, img.Status, names)
		}
		keys := recordedKeys(t, h, id)
		stored := h.objects(image.VariantPrefix(h.userID(user), id))
		slices.Sort(stored)
		if !slices.Equal(stored, keys) {
			t.Errorf("%s: objects %v, want the new set %v alone", id, stored, keys)
		}
		for _, k := range oldKeys[id] {
			if strings.HasSuffix(k, ".webp") && slices.Contains(stored, k) {
				t.Errorf("%s: replaced object %s still stored", id, k)
			}
		}
	}
	// Started again, there is nothing left to do.
	r = call(http.MethodPost, "/v1/admin/backfill", admin)
	r.json(t, &st)
	if st.Outdated != 0 {
		t.Errorf("backfill again: %s, want 0 outdated", r.Body)
	}
}
