// Package logctx carries log attributes in a context (request id, user id,
// task id, image id, attempt) and adds them to every log line written with
// that context, so that no call site has to repeat them.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns a context whose log lines carry attrs as well as those
// already in ctx. attrs are key/value pairs, as for slog.
func With(ctx context.Context, attrs ...any) context.Context {
	prev, _ := ctx.Value(key{}).([]slog.Attr)
	r := slog.Record{}
	r.Add(attrs...)
	next := make([]slog.Attr, 0, len(prev)+r.NumAttrs())
	next = append(next, prev...)
	r.Attrs(func(a slog.Attr) bool {
		next = append(next, a)
		return true
	})
	return context.WithValue(ctx, key{}, next)
}

// Handler adds the attributes of the record's context to the record.
type Handler struct {
	slog.Handler
}

// NewHandler wraps h.
func NewHandler(h slog.Handler) Handler { return Handler{h} }

// Handle implements slog.Handler.
func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(key{}).([]slog.Attr); ok {
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Handler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler {
	return Handler{h.Handler.WithGroup(name)}
}
