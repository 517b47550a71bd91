package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/imagesvc/imagesvc/pkg/client"
)

// imageExtensions are the files a directory argument of upload stands for.
var imageExtensions = []string{".jpg", ".jpeg", ".png", ".webp", ".gif", ".heic", ".heif", ".avif", ".tif", ".tiff"}

// uploadResult is what upload reports of one file.
type uploadResult struct {
	File   string              `json:"file"`
	ID     string              `json:"id,omitempty"`
	Status string              `json:"status"` // queued, done, failed, or rejected (refused at upload)
	Error  *client.ErrorDetail `json:"error,omitempty"`
	Image  *client.Image       `json:"image,omitempty"`
}

func (c *cli) uploadCommand() *cobra.Command {
	var wait bool
	var parallel int
	cmd := &cobra.Command{
		Use:   "upload FILE|DIR...",
		Short: "Upload images, and with --wait wait until they are processed",
		Long: "Upload files (a directory stands for the image files in it) a few at a\n" +
			"time. With --wait, wait for each until it is done or failed, told by the\n" +
			"server's event stream (or its long poll where there is no stream).\n" +
			"Progress bars are drawn on stderr when it is a terminal. The exit status\n" +
			"is 1 when any file was refused or failed.",
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := expandFiles(args)
			if err != nil {
				return err
			}
			s, err := c.session()
			if err != nil {
				return err
			}
			results := c.upload(cmd.Context(), s, files, wait, max(parallel, 1))
			return c.report(results, wait)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until each image is done or failed")
	cmd.Flags().IntVarP(&parallel, "parallel", "p", 4, "files sent at once")
	return cmd
}

// expandFiles replaces each directory by the image files directly in it.
func expandFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		n := len(files)
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") &&
				slices.Contains(imageExtensions, strings.ToLower(filepath.Ext(e.Name()))) {
				files = append(files, filepath.Join(a, e.Name()))
			}
		}
		if len(files) == n {
			return nil, fmt.Errorf("%s: no image files (%s)", a, strings.Join(imageExtensions, " "))
		}
	}
	return files, nil
}

// upload sends the files, parallel at a time, and with wait waits for each
// to be done or failed. Its results are in the order of files.
func (c *cli) upload(ctx context.Context, s *client.Session, files []string, wait bool, parallel int) []uploadResult {
	results := make([]uploadResult, len(files))
	display := newProgress(c.stderr, terminal(c.stderr))
	var watch *watcher
	if wait {
		// Follow the events before the first upload, so that none is
		// missed, however fast the processing.
		watch = newWatcher(ctx, s, c.stderr)
		defer watch.stop()
	}
	sem := make(chan struct{}, parallel)
	var g errgroup.Group
	for i, file := range files {
		row := display.add(file)
		g.Go(func() error {
			sem <- struct{}{}
			r := c.uploadOne(ctx, s, file, row)
			<-sem
			if wait && r.ID != "" {
				row.status("queued")
				img, err := watch.wait(ctx, r.ID, func(img *client.Image) { row.status(string(img.Status)) })
				if err != nil {
					r.Status, r.Error = "failed", &client.ErrorDetail{Code: "wait_failed", Message: err.Error()}
				} else {
					r.Status, r.Image, r.Error = string(img.Status), img, img.Error
				}
			}
			row.finish(r)
			results[i] = r
			return nil
		})
	}
	g.Wait()
	display.wait()
	return results
}

// uploadOne sends one file.
func (c *cli) uploadOne(ctx context.Context, s *client.Session, file string, row *progressRow) uploadResult {
	r := uploadResult{File: file}
	refuse := func(code string, err error) uploadResult {
		r.Status, r.Error = "rejected", &client.ErrorDetail{Code: code, Message: err.Error()}
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Code != "" {
			r.Error = &client.ErrorDetail{Code: apiErr.Code, Message: apiErr.Message}
		}
		return r
	}
	f, err := os.Open(file)
	if err != nil {
		return refuse("unreadable_file", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return refuse("unreadable_file", err)
	}
	row.start(st.Size())
	img, err := s.Upload(ctx, filepath.Base(file), f, st.Size(), row.sent)
	if err != nil {
		return refuse("upload_failed", err)
	}
	r.ID, r.Status, r.Image = img.Id, string(img.Status), img
	return r
}

// report prints the results and the summary line, and returns the error
// that makes the exit status 1 when a file was refused or failed.
func (c *cli) report(results []uploadResult, waited bool) error {
	counts := map[string]int{}
	for _, r := range results {
		counts[r.Status]++
	}
	if c.json {
		if err := c.printJSON(results); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, r := range results {
			line := fmt.Sprintf("%s\t%s\t%s", r.Status, r.ID, r.File)
			switch {
			case r.Error != nil:
				line += fmt.Sprintf("\t%s: %s", r.Error.Code, r.Error.Message)
			case r.Image != nil && r.Image.Status == client.ImageStatusDone:
				line += fmt.Sprintf("\t%dx%d, %d variants", r.Image.Width, r.Image.Height, len(r.Image.Variants))
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	var parts []string
	for _, st := range []string{"done", "queued", "failed", "rejected"} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	what := "uploaded"
	if waited {
		what = "processed"
	}
	c.say("%d files %s: %s", len(results), what, strings.Join(parts, ", "))
	if counts["failed"]+counts["rejected"] > 0 {
		return exitError{1}
	}
	return nil
}

// watcher tells when images are done or failed: from one event stream
// shared by every upload, or, where the server has none or it broke, by
// the long poll of each image.
type watcher struct {
	s      *client.Session
	cancel context.CancelFunc

	mu       sync.Mutex
	finished map[string]*client.Image      // events that came before their waiter
	waiting  map[string]chan *client.Image // waiters by image id
	dead     chan struct{}                 // closed when the stream ends
}

// recheck is how long a waiter trusts the stream before reading its
// image once (an event lost by the server would otherwise hold it).
const recheck = time.Minute

// newWatcher opens the event stream; without one (a 404: an older server)
// every wait uses the long poll, and any other refusal is said on stderr.
func newWatcher(ctx context.Context, s *client.Session, stderr io.Writer) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{s: s, cancel: cancel, finished: map[string]*client.Image{},
		waiting: map[string]chan *client.Image{}, dead: make(chan struct{})}
	stream, err := s.Events(ctx, "")
	if err != nil {
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 404 {
			fmt.Fprintf(stderr, "imagesvc: no event stream (%v); waiting with the long poll\n", err)
		}
		close(w.dead)
		return w
	}
	go func() {
		defer close(w.dead)
		for ev := range stream.C {
			img := ev.Event.Data
			w.mu.Lock()
			if ch, ok := w.waiting[img.Id]; ok {
				ch <- &img
				delete(w.waiting, img.Id)
			} else {
				w.finished[img.Id] = &img
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) stop() { w.cancel() }

// wait returns the image once it is done or failed.
func (w *watcher) wait(ctx context.Context, id string, changed func(*client.Image)) (*client.Image, error) {
	w.mu.Lock()
	if img, ok := w.finished[id]; ok {
		delete(w.finished, id)
		w.mu.Unlock()
		return img, nil
	}
	ch := make(chan *client.Image, 1)
	w.waiting[id] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.waiting, id)
		w.mu.Unlock()
	}()
	for {
		select {
		case img := <-ch:
			return img, nil
		case <-w.dead:
			return w.s.WaitForImage(ctx, id, changed)
		case <-time.After(recheck):
			r, err := w.s.GetImageWithResponse(ctx, id, nil)
			if err == nil && r.JSON200 != nil {
				changed(r.JSON200)
				if r.JSON200.Final() {
					return r.JSON200, nil
				}
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
