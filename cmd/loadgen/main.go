// Command loadgen makes load on a running imagesvc and prints what it
// measured: `make load` starts the API and two workers and runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	stdimage "image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/imagesvc/imagesvc/internal/loadgen"
)

func main() {
	cfg := loadgen.Config{}
	flag.StringVar(&cfg.BaseURL, "url", "http://127.0.0.1:8080", "API base URL (loopback only)")
	flag.IntVar(&cfg.Users, "users", 10, "users to sign up")
	flag.IntVar(&cfg.Images, "images", 200, "images to upload")
	flag.IntVar(&cfg.Concurrency, "c", 16, "concurrent clients")
	mp := flag.Float64("mp", 4, "megapixels of the uploaded JPEG")
	workers := flag.String("worker-metrics", "", "comma-separated worker /metrics URLs to sample for peak RSS")
	flag.StringVar(&cfg.APIMetrics, "api-metrics", "", "the API's /metrics URL to sample for peak RSS")
	flag.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "bound of the whole run")
	flag.Parse()
	if *workers != "" {
		cfg.WorkerMetrics = strings.Split(*workers, ",")
	}
	w := int(math.Sqrt(*mp * 1e6 * 4 / 3)) // 4:3
	cfg.Source = noiseJPEG(w, w*3/4)
	rep, err := loadgen.Run(context.Background(), cfg)
	if rep != nil {
		rep.Print(os.Stdout, cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// noiseJPEG is a w x h JPEG with photo-like entropy.
func noiseJPEG(w, h int) []byte {
	img := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(7, 7))
	for i := range img.Pix {
		img.Pix[i] = byte(int(img.Pix[max(i-4, 0)])/2 + int(r.IntN(128)))
	}
	var buf bytes.Buffer
	jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	return buf.Bytes()
}
