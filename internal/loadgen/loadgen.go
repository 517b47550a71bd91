// Package loadgen drives a running imagesvc over HTTP like a crowd of
// clients: it signs users up, uploads images with bounded concurrency,
// waits for every image to finish, and reports throughput, latencies and
// errors. cmd/loadgen prints its report; tests assert on its correctness.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config says what load to make.
type Config struct {
	BaseURL     string
	Users       int
	Images      int
	Concurrency int
	// Source is the file uploaded every time.
	Source []byte
	// WorkerMetrics are /metrics URLs whose process_resident_memory_bytes
	// is sampled during the run (peak RSS); APIMetrics likewise for the API.
	WorkerMetrics []string
	APIMetrics    string
	// Timeout bounds the whole run.
	Timeout time.Duration
}

// Report is what a run measured.
type Report struct {
	Accepted, Done, Failed int
	Errors                 map[int]int // HTTP status (0: transport error) of refused uploads
	UploadSeconds          float64     // from the first upload to the last answer
	ProcessSeconds         float64     // from the first upload to the last image finished
	UploadLatency          []time.Duration
	DoneLatency            []time.Duration // upload answered to done seen
	PeakWorkerRSS          int64
	PeakAPIRSS             int64
}

// Run makes the load and waits for every accepted image to finish.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Minute}
	tokens := make([]string, cfg.Users)
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range tokens {
		creds := fmt.Sprintf(`{"email":"load-%s-%d@example.com","password":"load test password"}`, stamp, i)
		if _, err := call(ctx, client, "POST", cfg.BaseURL+"/v1/auth/signup", "", "application/json", strings.NewReader(creds), 201); err != nil {
			return nil, fmt.Errorf("signup: %w", err)
		}
		body, err := call(ctx, client, "POST", cfg.BaseURL+"/v1/auth/login", "", "application/json", strings.NewReader(creds), 200)
		if err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(body, &tok)
		tokens[i] = tok.AccessToken
	}

	rep := &Report{Errors: map[int]int{}}
	var mu sync.Mutex
	type accepted struct {
		id, token string
		at        time.Time
	}
	var ids []accepted
	stopRSS := sampleRSS(ctx, client, cfg.WorkerMetrics, &rep.PeakWorkerRSS, &mu)
	defer stopRSS()
	if cfg.APIMetrics != "" {
		stopAPI := sampleRSS(ctx, client, []string{cfg.APIMetrics}, &rep.PeakAPIRSS, &mu)
		defer stopAPI()
	}

	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				token := tokens[i%len(tokens)]
				t0 := time.Now()
				id, status, err := upload(ctx, client, cfg.BaseURL, token, cfg.Source)
				lat := time.Since(t0)
				mu.Lock()
				rep.UploadLatency = append(rep.UploadLatency, lat)
				if err != nil || status != http.StatusAccepted {
					rep.Errors[status]++
				} else {
					rep.Accepted++
					ids = append(ids, accepted{id, token, time.Now()})
				}
				mu.Unlock()
			}
		})
	}
	for i := range cfg.Images {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	rep.UploadSeconds = time.Since(start).Seconds()

	// Poll every accepted image until done or failed.
	pending := slices.Clone(ids)
	for len(pending) > 0 {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("%d images still unfinished when the run timed out", len(pending))
		}
		var next []accepted
		for _, a := range pending {
			body, err := call(ctx, client, "GET", cfg.BaseURL+"/v1/images/"+a.id, a.token, "", nil, 200)
			if err != nil {
				next = append(next, a)
				continue
			}
			var img struct{ Status string }
			json.Unmarshal(body, &img)
			switch img.Status {
			case "done":
				rep.Done++
				rep.DoneLatency = append(rep.DoneLatency, time.Since(a.at))
			case "failed":
				rep.Failed++
				rep.DoneLatency = append(rep.DoneLatency, time.Since(a.at))
			default:
				next = append(next, a)
			}
		}
		pending = next
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	rep.ProcessSeconds = time.Since(start).Seconds()
	return rep, nil
}

func upload(ctx context.Context, client *http.Client, base, token string, data []byte) (string, int, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "load.jpg")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/images", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var img struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&img)
	return img.ID, resp.StatusCode, nil
}

func call(ctx context.Context, client *http.Client, method, url, token, ctype string, body io.Reader, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return b, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return b, nil
}

// sampleRSS polls the workers' process_resident_memory_bytes every 200 ms
// and keeps the largest value seen.
func sampleRSS(ctx context.Context, client *http.Client, urls []string, peak *int64, mu *sync.Mutex) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, u := range urls {
				body, err := call(ctx, client, "GET", u, "", "", nil, 200)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(bytes.NewReader(body))
				for sc.Scan() {
					if rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
						v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
						mu.Lock()
						*peak = max(*peak, int64(v))
						mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Percentile returns the p-th percentile (0 to 100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer, cfg Config) {
	fmt.Fprintf(w, "load: %d users, %d uploads of %d bytes, %d concurrent clients\n", cfg.Users, cfg.Images, len(cfg.Source), cfg.Concurrency)
	fmt.Fprintf(w, "  accepted %d, done %d, failed %d, refused %v\n", r.Accepted, r.Done, r.Failed, r.Errors)
	fmt.Fprintf(w, "  uploads accepted per second  %8.2f\n", float64(r.Accepted)/r.UploadSeconds)
	fmt.Fprintf(w, "  images processed per second  %8.2f\n", float64(r.Done+r.Failed)/r.ProcessSeconds)
	fmt.Fprintf(w, "  upload latency     p50 %7.3fs  p95 %7.3fs  p99 %7.3fs\n",
		Percentile(r.UploadLatency, 50).Seconds(), Percentile(r.UploadLatency, 95).Seconds(), Percentile(r.UploadLatency, 99).Seconds())
	fmt.Fprintf(w, "  upload to done     p50 %7.3fs  p95 %7.3fs  p99 %7.3fs\n",
		Percentile(r.DoneLatency, 50).Seconds(), Percentile(r.DoneLatency, 95).Seconds(), Percentile(r.DoneLatency, 99).Seconds())
	if r.PeakWorkerRSS > 0 {
		fmt.Fprintf(w, "  peak worker RSS    %d MB\n", r.PeakWorkerRSS>>20)
	}
	if r.PeakAPIRSS > 0 {
		fmt.Fprintf(w, "  peak API RSS       %d MB\n", r.PeakAPIRSS>>20)
	}
}
