package cluster

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// waitReady polls url until it answers 200, failing the test when p ends
// first or after 60 s.
func waitReady(tb testing.TB, url string, p *proc) {
	tb.Helper()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if p.exited() {
			tb.Fatalf("%s ended before it was ready: %v\n%s", p.name, p.err, p.tail())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after 60 s (%v)\n%s", url, err, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// s3Client talks to the S3 host.
func (c *cluster) s3Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + c.addr("s3", "7070")),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3Key, s3Secret, ""),
	})
}

// stored is what the database and the bucket hold for one image.
type stored struct {
	status, user     string
	attempt, crashes int
	rowKeys          []string // object keys the variant rows name (every format)
	s3Keys           []string // objects under the image's variants/ prefix
}

// storedImage reads an image's row, its variant rows and its variant
// objects.
func (c *cluster) storedImage(ctx context.Context, db *sql.DB, s3c *s3.Client, id string) (stored, error) {
	var st stored
	err := db.QueryRowContext(ctx, "SELECT status, user_id, attempt, crashes FROM images WHERE id = ?", id).
		Scan(&st.status, &st.user, &st.attempt, &st.crashes)
	if err != nil {
		return st, fmt.Errorf("image %s: %w", id, err)
	}
	rows, err := db.QueryContext(ctx, "SELECT object_key, COALESCE(formats, '') FROM image_variants WHERE image_id = ?", id)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var key, formats string
		if err := rows.Scan(&key, &formats); err != nil {
			return st, err
		}
		st.rowKeys = append(st.rowKeys, key)
		var fs []struct {
			ObjectKey string `json:"object_key"`
		}
		if formats != "" {
			if err := json.Unmarshal([]byte(formats), &fs); err != nil {
				return st, fmt.Errorf("formats of %s: %w", id, err)
			}
		}
		for _, f := range fs {
			st.rowKeys = append(st.rowKeys, f.ObjectKey)
		}
	}
	if err := rows.Err(); err != nil {
		return st, err
	}
	slices.Sort(st.rowKeys)
	st.rowKeys = slices.Compact(st.rowKeys)
	prefix := fmt.Sprintf("variants/%s/%s/", st.user, id)
	pages := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return st, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			st.s3Keys = append(st.s3Keys, *o.Key)
		}
	}
	slices.Sort(st.s3Keys)
	return st, nil
}

// verify checks every accepted upload against the API's answer, the
// database and the bucket: done, three variants, and exactly one set of
// variant objects (those the rows name, nothing else under the prefix).
// It returns how many images were processed more than once (attempt > 1).
func (c *cluster) verify(t *testing.T, cl *client, outs []outcome, final map[string]image) (retaken int) {
	t.Helper()
	db := c.sqlDB()
	s3c := c.s3Client()
	for _, o := range outs {
		if !o.accepted() {
			continue
		}
		img, ok := final[o.id]
		switch {
		case !ok:
			t.Errorf("image %s (accepted by %s): never read back", o.id, o.api)
			continue
		case img.Status != "done":
			t.Errorf("image %s (accepted by %s): status %s, error %v; want done (lost)", o.id, o.api, img.Status, img.Error)
			continue
		case len(img.Variants) != 3:
			t.Errorf("image %s: %d variants, want 3", o.id, len(img.Variants))
		}
		st, err := c.storedImage(t.Context(), db, s3c, o.id)
		if err != nil {
			t.Errorf("image %s: %v", o.id, err)
			continue
		}
		if st.attempt > 1 {
			retaken++
		}
		if len(st.rowKeys) == 0 || !slices.Equal(st.rowKeys, st.s3Keys) {
			t.Errorf("image %s (attempt %d): variant rows name %v, the bucket holds %v: two sets of variants, or a missing one",
				o.id, st.attempt, st.rowKeys, st.s3Keys)
		}
	}
	return retaken
}

// lost counts accepted uploads that did not end done.
func lost(outs []outcome, final map[string]image) int {
	n := 0
	for _, o := range outs {
		if o.accepted() && final[o.id].Status != "done" {
			n++
		}
	}
	return n
}

// noServerErrors fails the test for any 5xx other than a 503 with
// Retry-After.
func noServerErrors(t *testing.T, outs []outcome) {
	t.Helper()
	for _, o := range outs {
		if len(o.serverErrors) > 0 || o.noRetryAfter > 0 {
			t.Errorf("upload started %s: answers %v and %d 503 without Retry-After; want only 503 with Retry-After",
				o.start.Format("15:04:05.000"), o.serverErrors, o.noRetryAfter)
		}
	}
}
