// Command waitbench measures how soon a client learns that its image is
// done on an idle stack, and what the whole service adds to the imaging
// work on a batch of large photos. `make latency` starts the API and one
// worker on local services and runs it; it reports, it never fails on a
// time.
//
// Sequential: n uploads of a 2 MP JPEG, one at a time; each is followed by
// a long poll (GET ?wait=60s) and its accepted-to-done time is set beside
// the worker's own processing time for it (the stage seconds the worker's
// /metrics added up while it ran).
//
// Batch: 8 large photos (18 MP and 8 MP in turn) uploaded one after
// another and waited for, against the floor of one full libvips decode of
// each, two at a time, in this process.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imagesvc/imagesvc/internal/imaging"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "API base URL (loopback only)")
	workerMetrics := flag.String("worker-metrics", "", "the worker's /metrics URL")
	n := flag.Int("n", 20, "sequential uploads")
	batch := flag.Bool("batch", true, "also run the batch of 8 large photos")
	flag.Parse()
	if err := run(*base, *workerMetrics, *n, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "waitbench:", err)
		os.Exit(1)
	}
}

func run(base, workerMetrics string, n int, batch bool) error {
	ctx := context.Background()
	token, err := login(ctx, base)
	if err != nil {
		return err
	}
	src := testenv.PhotoJPEG(1632, 1224) // 2 MP
	var doneLat, procLat, extra []time.Duration
	for i := range n {
		before, err := stageSeconds(workerMetrics)
		if err != nil {
			return err
		}
		id, accepted, err := upload(ctx, base, token, src)
		if err != nil {
			return err
		}
		if err := waitDone(ctx, base, token, id); err != nil {
			return err
		}
		d := time.Since(accepted)
		after, err := stageSeconds(workerMetrics)
		if err != nil {
			return err
		}
		p := time.Duration((after - before) * float64(time.Second))
		if i > 0 { // the first warms the worker and the connections up
			doneLat, procLat, extra = append(doneLat, d), append(procLat, p), append(extra, d-p)
		}
	}
	fmt.Printf("sequential: %d uploads of a 2 MP JPEG (%d bytes), one at a time, after one to warm up\n", n-1, len(src))
	fmt.Printf("  accepted to done (long poll):   median %s, p90 %s, max %s\n", q(doneLat, 50), q(doneLat, 90), q(doneLat, 100))
	fmt.Printf("  worker's processing time:       median %s\n", q(procLat, 50))
	fmt.Printf("  beyond the processing time:     median %s, p90 %s\n", q(extra, 50), q(extra, 90))
	if !batch {
		return nil
	}

	sources := make([][]byte, 8)
	for i := range sources {
		if i%2 == 0 {
			sources[i] = testenv.PhotoJPEG(5184, 3456) // 18 MP
		} else {
			sources[i] = testenv.PhotoJPEG(3456, 2304) // 8 MP
		}
	}
	start := time.Now()
	var ids []string
	for _, s := range sources {
		id, _, err := upload(ctx, base, token, s)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	uploaded := time.Since(start)
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() { errs[i] = waitDone(ctx, base, token, id) })
	}
	wg.Wait()
	service := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// The floor: one full libvips decode of each, two at a time.
	start = time.Now()
	next := make(chan []byte)
	var dwg sync.WaitGroup
	for range 2 {
		dwg.Go(func() {
			for s := range next {
				imaging.DecodeFull(s)
			}
		})
	}
	for _, s := range sources {
		next <- s
	}
	close(next)
	dwg.Wait()
	floor := time.Since(start)
	fmt.Printf("batch: 8 photos (18 MP and 8 MP in turn) uploaded one after another and waited for\n")
	total := 0
	for _, s := range sources {
		total += len(s)
	}
	fmt.Printf("  service %s (the 8 uploads, %d MB, answered after %s), full libvips decode of each two at a time %s: %.2fx\n",
		service.Round(time.Millisecond), total>>20, uploaded.Round(time.Millisecond), floor.Round(time.Millisecond),
		service.Seconds()/floor.Seconds())
	return nil
}

func q(ds []time.Duration, pct int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*pct)/100)
	return s[i].Round(time.Millisecond)
}

func login(ctx context.Context, base string) (string, error) {
	creds := fmt.Sprintf(`{"email":"waitbench-%d@example.com","password":"correct horse battery"}`, time.Now().UnixNano())
	if _, err := call(ctx, "POST", base+"/v1/auth/signup", "", "application/json", strings.NewReader(creds), 201); err != nil {
		return "", err
	}
	body, err := call(ctx, "POST", base+"/v1/auth/login", "", "application/json", strings.NewReader(creds), 200)
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	return tok.AccessToken, json.Unmarshal(body, &tok)
}

// upload posts src and returns the image id and when the 202 came.
func upload(ctx context.Context, base, token string, src []byte) (string, time.Time, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "photo.jpg")
	fw.Write(src)
	mw.Close()
	body, err := call(ctx, "POST", base+"/v1/images", token, mw.FormDataContentType(), &buf, 202)
	at := time.Now()
	if err != nil {
		return "", at, err
	}
	var img struct{ ID string }
	return img.ID, at, json.Unmarshal(body, &img)
}

// waitDone long-polls an image until it is done.
func waitDone(ctx context.Context, base, token, id string) error {
	for {
		body, err := call(ctx, "GET", base+"/v1/images/"+id+"?wait=60s", token, "", nil, 200)
		if err != nil {
			return err
		}
		var img struct{ Status string }
		json.Unmarshal(body, &img)
		switch img.Status {
		case "done":
			return nil
		case "failed":
			return fmt.Errorf("image %s failed", id)
		}
	}
}

// stageSeconds is the sum of every processing stage's seconds a worker's
// /metrics reports.
func stageSeconds(url string) (float64, error) {
	body, err := call(context.Background(), "GET", url, "", "", nil, 200)
	if err != nil {
		return 0, err
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "imagesvc_processing_stage_seconds_sum{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum, nil
}

func call(ctx context.Context, method, url, token, contentType string, body io.Reader, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return b, nil
}
