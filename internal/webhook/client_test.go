package webhook_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/webhook"
)

func TestInternal(t *testing.T) {
	for _, tt := range []struct {
		addr     string
		internal bool
	}{
		{"127.0.0.1", true},
		{"10.1.2.3", true},
		{"100.64.0.1", true},
		{"169.254.169.254", true},
		{"192.168.0.10", true},
		{"0.0.0.0", true},
		{"224.0.0.1", true},
		{"::1", true},
		{"::", true},
		{"fd00::2", true},
		{"fe80::1", true},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::7f00:1", true},
		{"2002:7f00:1::1", true}, // 6to4 of 127.0.0.1
		// Zones: netip.Prefix.Contains is false for a zoned address, so
		// a deny list of prefixes let these through.
		{"::1%lo", true},
		{"fd00::2%eth0", true},
		{"fe80::1%eth0", true},
		{"2606:4700:4700::1111%eth0", true},
		{"8.8.8.8", false},
		{"93.184.215.14", false},
		{"2606:4700:4700::1111", false},
	} {
		if got := webhook.Internal(netip.MustParseAddr(tt.addr)); got != tt.internal {
			t.Errorf("Internal(%s) = %v, want %v", tt.addr, got, tt.internal)
		}
	}
}

func TestCheckURLRefusesInternal(t *testing.T) {
	c := webhook.NewClient(false, "test")
	for _, u := range []string{
		"http://[::1%25lo]:8080/hook", "http://[fd00::2%25eth0]/hook", "http://[fe80::1%25eth0]:9000/",
		"http://[::ffff:7f00:1]/hook", "http://127.1/hook", "http://[::1]/", "https://169.254.169.254/",
	} {
		if err := c.CheckURL(context.Background(), u); !errors.Is(err, webhook.ErrForbiddenURL) && !errors.Is(err, webhook.ErrUnresolvedURL) {
			t.Errorf("CheckURL(%s) = %v, want ErrForbiddenURL (or ErrUnresolvedURL)", u, err)
		}
	}
	if err := c.CheckURL(context.Background(), "https://93.184.215.14/hook"); err != nil {
		t.Errorf("CheckURL of a public address = %v, want nil", err)
	}
}

// TestDialRefusesZonedLoopback: the dial-time check holds for a zoned
// address too, so a URL that was never checked (or whose name resolves
// differently later) cannot reach a server on loopback.
func TestDialRefusesZonedLoopback(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	port := l.Addr().(*net.TCPAddr).Port
	c := webhook.NewClient(false, "test")
	for _, host := range []string{"[::1]", "[::1%25lo]"} {
		u := "http://" + host + ":" + strconv.Itoa(port) + "/hook"
		res := c.Post(context.Background(), u, "msg_x", time.Now(), []byte(`{}`), "v1,x")
		if res.Err == nil {
			t.Errorf("Post %s: connected (status %d), want refused", u, res.Status)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server got %d requests, want none", n)
	}
}
