package quickstart

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// DeliveryKeys returns the delivery URL signing keys kept in
// dir/delivery_keys (DELIVERY_SIGNING_KEYS's form), creating one key on
// first use, so that the image URLs given out survive a restart.
func DeliveryKeys(dir string) (string, error) {
	path := filepath.Join(dir, "delivery_keys")
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read delivery keys: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	keys := "qs1:" + base64.StdEncoding.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(keys), 0o600); err != nil {
		return "", fmt.Errorf("write delivery keys: %w", err)
	}
	return keys, nil
}

// S3Addr returns the loopback address the embedded S3 server listens on:
// the one kept in dir/s3_addr, or a free port picked now and kept, so that
// presigned URLs stay valid across a restart. A kept port another process
// took meanwhile is replaced by a new one (URLs presigned before then stop
// working; the stable delivery URLs do not).
func S3Addr(dir string) (addr string, changed bool, err error) {
	path := filepath.Join(dir, "s3_addr")
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read embedded s3 address: %w", err)
	}
	kept := strings.TrimSpace(string(b))
	if kept != "" {
		l, err := net.Listen("tcp", kept)
		if err == nil {
			l.Close()
			return kept, false, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", false, fmt.Errorf("find a port for the embedded s3 server: %w", err)
	}
	addr = l.Addr().String()
	l.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(addr), 0o600); err != nil {
		return "", false, fmt.Errorf("write embedded s3 address: %w", err)
	}
	return addr, kept != "", nil
}
