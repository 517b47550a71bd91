package testenv

import (
	"bytes"
	"fmt"
	stdimage "image"
	"image/jpeg"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port nobody listens on, for a
// process the test starts. The port comes from 20000-32767, below Linux's
// ephemeral range (32768-60999): a port the kernel handed out as one test's
// ephemeral port would otherwise be free when checked here and taken by an
// outgoing connection by the time the process binds it (seen in CI).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12768))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr
	}
	tb.Fatal("no free port in 20000-32767")
	return ""
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
