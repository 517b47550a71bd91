package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imagesvc/imagesvc/internal/gormstore"
	"github.com/imagesvc/imagesvc/internal/loadgen"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// TestLoadShort is the shortened `make load` run: the API and two workers
// as processes, 40 uploads from 8 concurrent clients. It asserts
// correctness only, never times: every upload accepted and done, every done
// image with its three variants in the database and in S3, no orphan.
func TestLoadShort(t *testing.T) {
	f := startFleetWith(t, 0)
	f.start("worker")
	f.start("worker")
	cfg := loadgen.Config{BaseURL: f.base, Users: 4, Images: 40, Concurrency: 8,
		Source: testenv.NoiseJPEG(t, 1200, 900), WorkerMetrics: []string{"http://" + f.workerAddr + "/metrics"}, Timeout: 3 * time.Minute}
	rep, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out, cfg)
	t.Log("\n" + out.String())
	if rep.Accepted != 40 || rep.Done != 40 || rep.Failed != 0 || len(rep.Errors) != 0 {
		t.Fatalf("accepted %d, done %d, failed %d, refused %v; want 40 accepted and done", rep.Accepted, rep.Done, rep.Failed, rep.Errors)
	}

	// Invariants on the stores themselves.
	cfgDB := gormstore.NewDefaultConfig()
	cfgDB.URL = f.dbURL
	db, err := gormstore.Open(context.Background(), cfgDB)
	if err != nil {
		t.Fatal(err)
	}
	store := gormstore.NewStore(db)
	defer store.Close()
	counts, err := store.CountByStatus(context.Background())
	if err != nil || counts["done"] != 40 || len(counts) != 1 {
		t.Errorf("images by status %v (%v), want 40 done and nothing else", counts, err)
	}
	keys, err := f.blobs.Keys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	originals, variants := 0, 0
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "originals/"):
			originals++
		case strings.HasPrefix(k, "variants/"):
			variants++
		}
	}
	// Three variants in two formats (VARIANT_FORMATS' default).
	if originals != 40 || variants != 240 || len(keys) != 280 {
		t.Errorf("S3 holds %d originals and %d variant objects (%d keys), want 40 and 240", originals, variants, len(keys))
	}
}
