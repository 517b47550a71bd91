package testenv

import (
	"bytes"
	stdimage "image"
	"image/jpeg"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port nobody listens on.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitUntil polls ok every 50 ms and fails the test after d.
func WaitUntil(tb testing.TB, d time.Duration, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("no %s after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NoiseJPEG is a w x h JPEG of random pixels: slow to decode, like a
// detailed photograph, so that a worker can be caught mid-task.
func NoiseJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := stdimage.NewRGBA(stdimage.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
