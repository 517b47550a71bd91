//go:build !noquickstart

package quickstart

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
	"github.com/spf13/afero"
)

// Available reports whether this binary can run the quickstart: it can,
// unless built with the tag noquickstart.
func Available() error { return nil }

// Redis is an embedded Redis-protocol server. It keeps nothing across
// restarts: the reconciler enqueues again the images left unfinished.
type Redis struct {
	srv *miniredis.Miniredis
}

// StartRedis starts an embedded Redis-protocol server on a loopback port.
func StartRedis() (*Redis, error) {
	srv := miniredis.NewMiniRedis()
	if err := srv.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return &Redis{srv: srv}, nil
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.srv.Addr() + "/0" }

// Close stops the server.
func (r *Redis) Close() { r.srv.Close() }

// S3 is an embedded S3-protocol server storing objects under a directory. It
// does not check signatures: it listens on loopback only and is meant for
// one developer's machine.
type S3 struct {
	srv *http.Server
	url string
}

// StartS3 starts an embedded S3-protocol server on addr (host:port, port 0
// for any) that stores objects under dir.
func StartS3(dir, addr string) (*S3, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("s3 directory: %w", err)
	}
	backend, err := s3afero.MultiBucket(afero.NewBasePathFs(afero.NewOsFs(), dir))
	if err != nil {
		return nil, fmt.Errorf("s3 backend: %w", err)
	}
	faker := gofakes3.New(backend, gofakes3.WithoutVersioning())
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen embedded s3: %w", err)
	}
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return &S3{srv: srv, url: "http://" + l.Addr().String()}, nil
}

// URL is the endpoint of the server.
func (s *S3) URL() string { return s.url }

// Close stops the server.
func (s *S3) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}
