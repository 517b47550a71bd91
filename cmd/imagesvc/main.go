// Command imagesvc is the command-line client of the imagesvc API: sign up
// and log in, upload files with progress bars and wait for them to be
// processed, list, download and delete images, and manage webhooks.
//
//	imagesvc login --email me@example.com
//	imagesvc upload --wait photos/
//	imagesvc download ID --variant small -o thumbs/
//
// The server is --server, else IMAGESVC_SERVER, else http://localhost:8080.
// Tokens are kept in the user's configuration directory
// (credentials.json under imagesvc/, readable by the user only) and
// refreshed as needed. --json prints machine-readable output on stdout and
// nothing else there.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
