package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/testenv"
)

// client uploads through every API it knows, like a client behind a load
// balancer that retries: on a connection error, or a 503 with Retry-After,
// it tries the next API.
type client struct {
	apis   []string
	http   *http.Client
	tokens []string
}

// outcome is what happened to one upload, over all its tries.
type outcome struct {
	id           string
	status       int // the last answer; 202 when accepted, 0 when no API answered
	refused      int // 503s with Retry-After on the way
	noRetryAfter int // 503s without Retry-After (a failure)
	serverErrors []int
	connErrors   int
	api          string // the API that accepted it
	start, end   time.Time
}

func (o outcome) accepted() bool { return o.status == http.StatusAccepted }

func newClient(tb testing.TB, apis []string, users int) *client {
	tb.Helper()
	c := &client{apis: apis, http: &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
	}}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range users {
		creds := fmt.Sprintf(`{"email":"cluster-%s-%d@example.com","password":"cluster test password"}`, stamp, i)
		if _, err := c.call(tb.Context(), apis[0], "POST", "/v1/auth/signup", "", creds, 201); err != nil {
			tb.Fatalf("signup: %v", err)
		}
		body, err := c.call(tb.Context(), apis[0], "POST", "/v1/auth/login", "", creds, 200)
		if err != nil {
			tb.Fatalf("login: %v", err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(body, &tok)
		c.tokens = append(c.tokens, tok.AccessToken)
	}
	return c
}

func (c *client) call(ctx context.Context, api, method, path, token, body string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, api+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return b, fmt.Errorf("%s %s%s: %d %s", method, api, path, resp.StatusCode, b)
	}
	return b, nil
}

// upload sends data as user n's upload, beginning with API first and
// moving on to the next one on connection errors and 503s, for at most 40
// tries or until ctx ends.
func (c *client) upload(ctx context.Context, n, first int, data []byte) outcome {
	o := outcome{start: time.Now()}
	token := c.tokens[n%len(c.tokens)]
	for try := 0; try < 40 && ctx.Err() == nil; try++ {
		api := c.apis[(first+try)%len(c.apis)]
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "cluster.jpg")
		fw.Write(data)
		mw.Close()
		req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v1/images", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.http.Do(req)
		if err != nil {
			o.connErrors++
			o.status = 0
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		var img struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&img)
		resp.Body.Close()
		o.status = resp.StatusCode
		switch {
		case resp.StatusCode == http.StatusAccepted:
			o.id, o.api, o.end = img.ID, api, time.Now()
			return o
		case resp.StatusCode == http.StatusServiceUnavailable:
			ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil {
				o.noRetryAfter++
				ra = 1
			} else {
				o.refused++
			}
			// Honour Retry-After, up to a second: the next try goes to the
			// other API, which may well be fine.
			sleep(ctx, min(time.Duration(ra)*time.Second, time.Second))
		case resp.StatusCode >= 500:
			o.serverErrors = append(o.serverErrors, resp.StatusCode)
			sleep(ctx, 200*time.Millisecond)
		default:
			o.end = time.Now()
			return o
		}
	}
	o.end = time.Now()
	return o
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// load is steady upload traffic: conc clients, each uploading one image
// after another with a pause, alternating which API they begin with.
type load struct {
	mu       sync.Mutex
	outcomes []outcome
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// steady starts the load; finish stops it and returns every outcome. It
// stops by itself after max uploads.
func (c *client) steady(ctx context.Context, data []byte, conc int, pause time.Duration, max int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel}
	var n int
	for range conc {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				l.mu.Lock()
				i := n
				n++
				l.mu.Unlock()
				if i >= max {
					return
				}
				o := c.upload(ctx, i, i, data) // alternate the first API
				if ctx.Err() != nil && !o.accepted() {
					return // cut short by finish, not refused
				}
				l.mu.Lock()
				l.outcomes = append(l.outcomes, o)
				l.mu.Unlock()
				sleep(ctx, pause)
			}
		})
	}
	return l
}

// snapshot is a copy of the outcomes so far.
func (l *load) snapshot() []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.outcomes...)
}

func (l *load) finish() []outcome {
	l.cancel()
	l.wg.Wait()
	return l.snapshot()
}

// image is the part of the image object the test checks.
type image struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Attempt  int
	Variants []struct {
		Name string `json:"name"`
	} `json:"variants"`
	Error *struct{ Code, Message string } `json:"error"`
}

// waitFinished polls every accepted image (through whichever API answers)
// until each is done or failed, or d runs out; it returns the last state of
// each.
func (c *client) waitFinished(ctx context.Context, outs []outcome, d time.Duration) map[string]image {
	deadline := time.Now().Add(d)
	last := map[string]image{}
	pending := map[string]string{} // id -> token
	for i, o := range outs {
		if o.accepted() {
			pending[o.id] = c.tokens[i%len(c.tokens)]
		}
	}
	// The token of an image: any user's token reads only their own images,
	// so try each until one answers 200.
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		for id := range pending {
			img, ok := c.get(ctx, id)
			if !ok {
				continue
			}
			last[id] = img
			if img.Status == "done" || img.Status == "failed" {
				delete(pending, id)
			}
		}
		if len(pending) > 0 {
			sleep(ctx, 300*time.Millisecond)
		}
	}
	return last
}

// get reads an image through any API, with any user's token.
func (c *client) get(ctx context.Context, id string) (image, bool) {
	for _, api := range c.apis {
		for _, tok := range c.tokens {
			body, err := c.call(ctx, api, "GET", "/v1/images/"+id, tok, "", 200)
			if err != nil {
				if strings.Contains(err.Error(), ": 404 ") {
					continue // another user's image
				}
				break // this API is down: the next one
			}
			var img image
			json.Unmarshal(body, &img)
			return img, true
		}
	}
	return image{}, false
}

// photoJPEG is a 4:3 JPEG of the given size made like make bench's
// generated photograph (testenv.PhotoJPEG: texture, edges, noise), so that
// the CPU per image compares with the bench's table.
func photoJPEG(tb testing.TB, megapixels float64) []byte {
	tb.Helper()
	w := int(math.Sqrt(megapixels * 1e6 * 4 / 3))
	return testenv.PhotoJPEG(w, w*3/4)
}

// summary counts outcomes for the test log and the failure messages.
type summary struct {
	uploads, accepted, refused, noRetryAfter, serverErrors, connErrors, unanswered int
	other                                                                          map[int]int
}

func summarize(outs []outcome) summary {
	s := summary{other: map[int]int{}}
	for _, o := range outs {
		s.uploads++
		s.refused += o.refused
		s.noRetryAfter += o.noRetryAfter
		s.serverErrors += len(o.serverErrors)
		s.connErrors += o.connErrors
		switch {
		case o.accepted():
			s.accepted++
		case o.status == 0:
			s.unanswered++
		default:
			s.other[o.status]++
		}
	}
	return s
}

func (s summary) String() string {
	return fmt.Sprintf("%d uploads: %d accepted, %d refused with 503 + Retry-After on the way, %d 503 without Retry-After, "+
		"%d other 5xx, %d connection errors, %d never answered, other final statuses %v",
		s.uploads, s.accepted, s.refused, s.noRetryAfter, s.serverErrors, s.connErrors, s.unanswered, s.other)
}
