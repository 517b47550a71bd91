// Command api serves the imagesvc REST API: it stores uploads in S3, records
// them in MySQL and enqueues their processing on Redis. With QUICKSTART=true
// it embeds each dependency left unset and is the whole service in one
// process (make run).
//
// Commands: `api` serves; `api migrate` applies the migrations and exits;
// `api backfill` re-makes the variants of images made with another
// VARIANTS or VARIANT_FORMATS, on the workers, behind new uploads;
// `api promote EMAIL` gives a user the admin role; `api bucket-cors [ORIGIN
// ...]` lets pages of those origins (default CORS_ALLOWED_ORIGINS) upload
// straight to the bucket; `api healthcheck` exits 0
// when the API on HTTP_ADDR answers /healthz (the container health check).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/imagesvc/imagesvc/internal/app"
	"github.com/imagesvc/imagesvc/internal/config"
	"github.com/imagesvc/imagesvc/internal/health"
	"github.com/imagesvc/imagesvc/internal/image"
)

func main() {
	// The health check needs only the listen address: it must not fail on
	// settings the running process has and the check's environment lacks.
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" {
		if err := health.Probe(context.Background(), config.ListenAddr(config.API)); err != nil {
			fmt.Fprintf(os.Stderr, "api healthcheck: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := config.Load(config.API)
	if err != nil {
		fmt.Fprintf(os.Stderr, "api: configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := app.NewLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	switch {
	case len(args) == 0:
		err = app.RunAPI(ctx, cfg, log)
	case args[0] == "migrate" && len(args) == 1:
		err = app.Migrate(ctx, cfg)
	case args[0] == "backfill" && len(args) == 1:
		var st image.BackfillStatus
		if st, err = app.Backfill(ctx, cfg); err == nil {
			fmt.Printf("backfill started: %d done images to make again with variant profile %s; the workers' backfill queue "+
				"runs behind new uploads (progress: /v1/admin/stats, or the dashboard's backfill queue)\n", st.Outdated, st.Profile)
		}
	case args[0] == "promote" && len(args) == 2:
		if err = app.Promote(ctx, cfg, args[1]); err == nil {
			fmt.Printf("%s is an admin now; the role is in tokens issued from the next login or refresh\n", args[1])
		}
	case args[0] == "bucket-cors":
		if err = app.SetBucketCORS(ctx, cfg, args[1:]); err == nil {
			fmt.Printf("bucket %s: CORS set\n", cfg.S3.Bucket)
		}
	default:
		err = errors.New("usage: api [migrate | backfill | promote EMAIL | bucket-cors [ORIGIN ...] | healthcheck]")
	}
	stop()
	if err != nil {
		log.Error("api stopped", "err", err)
		os.Exit(1)
	}
}
