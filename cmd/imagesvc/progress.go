package main

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress draws a bar per file on a terminal: the bytes sent, then the
// image's status. Where stderr is not a terminal it draws nothing.
type progress struct {
	p *mpb.Progress // nil: nothing drawn
}

func newProgress(w io.Writer, draw bool) *progress {
	if !draw {
		return &progress{}
	}
	return &progress{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))}
}

// progressRow is one file's bar. Its total is the file's size plus one
// step for processing, so the bar is full only once the image is final.
type progressRow struct {
	bar   *mpb.Bar
	mu    sync.Mutex
	state string
	size  int64
}

func (p *progress) add(file string) *progressRow {
	r := &progressRow{state: "waiting"}
	if p.p == nil {
		return r
	}
	name := filepath.Base(file)
	if len(name) > 24 {
		name = name[:21] + "..."
	}
	r.bar = p.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace, W: 25})),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.state
		})),
	)
	return r
}

// start sets the bar's total once the file's size is known.
func (r *progressRow) start(size int64) {
	r.mu.Lock()
	r.size, r.state = size, "uploading"
	r.mu.Unlock()
	if r.bar != nil {
		r.bar.SetTotal(size+1, false)
	}
}

// sent moves the bar to n bytes sent.
func (r *progressRow) sent(n int64) {
	if r.bar == nil {
		return
	}
	r.mu.Lock()
	if r.size > 0 {
		r.state = fmt.Sprintf("uploading %3d%%", n*100/r.size)
	}
	r.mu.Unlock()
	r.bar.SetCurrent(n)
}

// status shows the image's status after the upload.
func (r *progressRow) status(s string) {
	r.mu.Lock()
	r.state = s
	r.mu.Unlock()
	if r.bar != nil {
		r.bar.SetCurrent(r.size) // every byte is sent
	}
}

// finish shows the file's outcome and completes the bar.
func (r *progressRow) finish(res uploadResult) {
	r.mu.Lock()
	r.state = res.Status
	if res.Error != nil {
		r.state += " (" + res.Error.Code + ")"
	}
	r.mu.Unlock()
	if r.bar == nil {
		return
	}
	if res.Status == "failed" || res.Status == "rejected" {
		r.bar.Abort(false)
		return
	}
	r.bar.SetTotal(-1, true)
}

// wait returns once every bar has been drawn for the last time.
func (p *progress) wait() {
	if p.p != nil {
		p.p.Wait()
	}
}
