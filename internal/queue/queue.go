// Package queue carries image work over asynq on Redis: the task types and
// their payloads, the enqueuer the API uses, and the handlers the worker runs.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/imagesvc/imagesvc/internal/failure"
	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/logctx"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// Queue names. Images are weighted over webhooks so that a delivery backlog
// never starves processing; the backfill runs behind both (and steps aside
// while images wait: see BackfillHandler).
const (
	QueueImages   = "images"
	QueueWebhooks = "webhooks"
	QueueBackfill = "backfill"
)

// Task types.
const (
	// TypeProcessImage makes the variants of one image.
	TypeProcessImage = "image:process"
	// TypeDeliverWebhook makes one attempt of one webhook delivery.
	TypeDeliverWebhook = "webhook:deliver"
	// TypeBackfillScan enqueues a page of outdated images for the backfill.
	TypeBackfillScan = "backfill:scan"
	// TypeBackfillImage makes an outdated image's variants again.
	TypeBackfillImage = "image:backfill"
)

// BackfillScanPayload is the payload of TypeBackfillScan.
type BackfillScanPayload struct {
	Profile string `json:"profile"`
	AfterID string `json:"after_id"`
}

// BackfillImagePayload is the payload of TypeBackfillImage.
type BackfillImagePayload struct {
	ImageID string `json:"image_id"`
	Profile string `json:"profile"`
}

// DeliverWebhookPayload is the payload of TypeDeliverWebhook.
type DeliverWebhookPayload struct {
	DeliveryID string `json:"delivery_id"`
}

// ProcessImagePayload is the payload of TypeProcessImage: an id, never bytes.
type ProcessImagePayload struct {
	ImageID string `json:"image_id"`
}

// Config holds the queue settings.
type Config struct {
	// MaxRetry is how many times a failed task is retried.
	MaxRetry int
	// RetryBase is the first retry delay; each next one doubles, up to
	// RetryMax, with up to 20% jitter.
	RetryBase time.Duration
	RetryMax  time.Duration
	// TaskTimeout bounds one processing attempt. It must be shorter than the
	// image lease.
	TaskTimeout time.Duration
	// Concurrency is the number of tasks a worker runs at once.
	Concurrency int
	// ShutdownTimeout is how long a stopping worker lets running tasks finish.
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how long an idle worker sleeps between looks at
	// empty queues (asynq polls; it has no wake-up on enqueue). Its
	// default of 1 s made accepted-to-done take up to a second on an idle
	// stack; each look is two Redis commands.
	TaskCheckInterval time.Duration
}

// NewDefaultConfig returns retries over about 40 minutes: long enough to
// ride out a dependency that is briefly down.
func NewDefaultConfig() Config {
	return Config{
		MaxRetry: 10, RetryBase: 5 * time.Second, RetryMax: 10 * time.Minute,
		TaskTimeout: 5 * time.Minute, Concurrency: 2, ShutdownTimeout: 30 * time.Second,
		TaskCheckInterval: 100 * time.Millisecond,
	}
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	if c.MaxRetry < 0 {
		errs = append(errs, errors.New("max retry must not be negative"))
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, errors.New("retry delays must be positive, base not above max"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("WORKER_CONCURRENCY must be at least 1"))
	}
	if c.TaskTimeout <= 0 {
		errs = append(errs, errors.New("task timeout must be positive"))
	}
	return errors.Join(errs...)
}

// NewProcessImageTask returns the task for an image. Its TaskID is the image
// id, so a second enqueue while one is pending is refused by Redis.
func NewProcessImageTask(imageID string, cfg Config) (*asynq.Task, error) {
	payload, err := json.Marshal(ProcessImagePayload{ImageID: imageID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeProcessImage, payload,
		asynq.TaskID(imageID), asynq.Queue(QueueImages),
		asynq.MaxRetry(cfg.MaxRetry), asynq.Timeout(cfg.TaskTimeout)), nil
}

// Enqueuer implements image.Queue.
type Enqueuer struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	cfg       Config
}

var _ image.Queue = (*Enqueuer)(nil)

// NewEnqueuer returns an Enqueuer on a Redis client it does not own.
func NewEnqueuer(rdb redis.UniversalClient, cfg Config) *Enqueuer {
	return &Enqueuer{client: asynq.NewClientFromRedisClient(rdb), inspector: asynq.NewInspectorFromRedisClient(rdb), cfg: cfg}
}

// EnqueueProcess implements image.Queue.
func (e *Enqueuer) EnqueueProcess(ctx context.Context, imageID string) error {
	task, err := NewProcessImageTask(imageID, e.cfg)
	if err != nil {
		return err
	}
	return e.enqueueUnique(ctx, task, QueueImages, imageID)
}

// enqueueUnique enqueues a task whose id names what it works on. An id taken
// by a pending, scheduled, retrying or running task means the work is queued
// already. One taken by an archived or completed task is a finished attempt:
// it is deleted so that the work can run again, which is what a caller
// enqueueing it wants (reprocess, reconciler, redeliver).
func (e *Enqueuer) enqueueUnique(ctx context.Context, task *asynq.Task, queue, id string) error {
	var err error
	for range 2 {
		_, err = e.client.EnqueueContext(ctx, task)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			break
		}
		info, ierr := e.inspector.GetTaskInfo(queue, id)
		if ierr != nil || (info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted) {
			return nil // already queued, retrying or running (or gone meanwhile)
		}
		if derr := e.inspector.DeleteTask(queue, id); derr != nil && !errors.Is(derr, asynq.ErrTaskNotFound) {
			return fmt.Errorf("delete finished task %s: %w", id, derr)
		}
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", task.Type(), err)
	}
	return nil
}

var _ image.Backfills = (*Enqueuer)(nil)

// EnqueueBackfillScan implements image.Backfills. The task id names the
// page, so a scan started twice enqueues each page once while it is
// queued.
func (e *Enqueuer) EnqueueBackfillScan(ctx context.Context, profile, afterID string) error {
	payload, err := json.Marshal(BackfillScanPayload{Profile: profile, AfterID: afterID})
	if err != nil {
		return err
	}
	id := "backfill-scan:" + profile + ":" + afterID
	task := asynq.NewTask(TypeBackfillScan, payload, asynq.TaskID(id), asynq.Queue(QueueBackfill),
		asynq.MaxRetry(e.cfg.MaxRetry), asynq.Timeout(time.Minute))
	return e.enqueueUnique(ctx, task, QueueBackfill, id)
}

// EnqueueBackfill implements image.Backfills.
func (e *Enqueuer) EnqueueBackfill(ctx context.Context, imageID, profile string) error {
	payload, err := json.Marshal(BackfillImagePayload{ImageID: imageID, Profile: profile})
	if err != nil {
		return err
	}
	id := "backfill:" + imageID
	task := asynq.NewTask(TypeBackfillImage, payload, asynq.TaskID(id), asynq.Queue(QueueBackfill),
		asynq.MaxRetry(e.cfg.MaxRetry), asynq.Timeout(e.cfg.TaskTimeout))
	return e.enqueueUnique(ctx, task, QueueBackfill, id)
}

var _ image.QueueStats = (*Enqueuer)(nil)

// Depths implements image.QueueStats for the images and webhooks queues.
func (e *Enqueuer) Depths(ctx context.Context) (map[string]image.QueueDepth, error) {
	// A queue exists in Redis only once a task has been enqueued to it.
	existing, err := e.inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	out := map[string]image.QueueDepth{}
	for _, q := range []string{QueueImages, QueueWebhooks, QueueBackfill} {
		if !slices.Contains(existing, q) {
			out[q] = image.QueueDepth{}
			continue
		}
		info, err := e.inspector.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		out[q] = image.QueueDepth{Pending: info.Pending, Active: info.Active, Scheduled: info.Scheduled,
			Retry: info.Retry, Archived: info.Archived}
	}
	return out, nil
}

// Inspector returns the asynq inspector on the same Redis, for metrics.
func (e *Enqueuer) Inspector() *asynq.Inspector { return e.inspector }

// EnqueueDelivery implements webhook.Queue. The task id is the delivery id:
// a delivery has at most one attempt scheduled at a time.
func (e *Enqueuer) EnqueueDelivery(ctx context.Context, deliveryID string, delay time.Duration) error {
	payload, err := json.Marshal(DeliverWebhookPayload{DeliveryID: deliveryID})
	if err != nil {
		return err
	}
	// The webhook service keeps its own schedule and attempt count; asynq's
	// retries only carry it out (see RetryDelay), so allow plenty.
	task := asynq.NewTask(TypeDeliverWebhook, payload, asynq.TaskID(deliveryID), asynq.Queue(QueueWebhooks),
		asynq.MaxRetry(100), asynq.Timeout(webhook.TotalTimeout+5*time.Second), asynq.ProcessIn(delay))
	return e.enqueueUnique(ctx, task, QueueWebhooks, deliveryID)
}

var _ webhook.Queue = (*Enqueuer)(nil)

// Processor is what the image handler needs from the domain.
type Processor interface {
	Process(ctx context.Context, imageID string) error
	GiveUp(ctx context.Context, imageID string, cause error) error
}

// ImageHandler runs TypeProcessImage tasks.
type ImageHandler struct {
	proc Processor
	log  *slog.Logger
}

// NewImageHandler returns an ImageHandler.
func NewImageHandler(proc Processor, log *slog.Logger) *ImageHandler {
	return &ImageHandler{proc: proc, log: log}
}

// ProcessTask implements asynq.Handler.
func (h *ImageHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ProcessImagePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ImageID == "" {
		return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
	}
	retry, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	taskID, _ := asynq.GetTaskID(ctx)
	// Every log line of this task, here and in the domain, carries these.
	ctx = logctx.With(ctx, "task_id", taskID, "image_id", p.ImageID, "attempt", retry+1)
	return h.process(ctx, p.ImageID, retry, maxRetry)
}

// process runs attempt retry+1 of at most maxRetry+1: an error the domain
// calls permanent is not retried, and the last attempt's error gives up on
// the image.
func (h *ImageHandler) process(ctx context.Context, imageID string, retry, maxRetry int) error {
	start := time.Now()
	err := h.proc.Process(ctx, imageID)
	switch {
	case err == nil:
		h.log.InfoContext(ctx, "image task finished", "seconds", time.Since(start).Seconds())
		return nil
	case failure.KindOf(err) == failure.Unprocessable:
		// The image is marked failed already; retrying cannot help.
		h.log.InfoContext(ctx, "image failed", "code", failure.CodeOf(err), "err", err)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case retry >= maxRetry:
		if gerr := h.proc.GiveUp(context.WithoutCancel(ctx), imageID, err); gerr != nil {
			return fmt.Errorf("%w (and %w)", err, gerr)
		}
		return err
	default:
		h.log.WarnContext(ctx, "image processing failed, will retry", "err", err)
		return err
	}
}

// WebhookHandler runs TypeDeliverWebhook tasks.
type WebhookHandler struct {
	deliverer Deliverer
	log       *slog.Logger
}

// Deliverer is what the webhook handler needs from the webhook service.
type Deliverer interface {
	Deliver(ctx context.Context, deliveryID string) error
}

// NewWebhookHandler returns a WebhookHandler.
func NewWebhookHandler(d Deliverer, log *slog.Logger) *WebhookHandler {
	return &WebhookHandler{deliverer: d, log: log}
}

// ProcessTask implements asynq.Handler. A *webhook.RetryError carries the
// delay the webhook schedule wants; RetryDelay honours it.
func (h *WebhookHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p DeliverWebhookPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == "" {
		return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
	}
	ctx = logctx.With(ctx, "task_id", p.DeliveryID, "delivery_id", p.DeliveryID)
	return h.deliverer.Deliver(ctx, p.DeliveryID)
}

// RetryDelay returns the delay before a task's next attempt: the one a
// webhook delivery or a backfill that stepped aside asks for, or else
// exponential delays with jitter, base, 2·base, 4·base… capped at max.
func RetryDelay(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var re *webhook.RetryError
		if errors.As(err, &re) {
			return re.After
		}
		var y *yield
		if errors.As(err, &y) {
			return y.after
		}
		d := base
		for i := 0; i < n && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d + time.Duration(rand.Int64N(int64(d)/5+1))
	}
}

// NewServer returns an asynq server for the worker, on a Redis client it
// does not own.
func NewServer(rdb redis.UniversalClient, cfg Config, log *slog.Logger) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{QueueImages: 6, QueueWebhooks: 1, QueueBackfill: 1},
		RetryDelayFunc:    RetryDelay(cfg.RetryBase, cfg.RetryMax),
		IsFailure:         isFailure,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		TaskCheckInterval: cfg.TaskCheckInterval,
		Logger:            slogAdapter{log},
		LogLevel:          asynq.WarnLevel,
	})
}

// NewMux returns the handler of every task type; webhooks and backfill may
// be nil.
func NewMux(images *ImageHandler, webhooks *WebhookHandler, backfill *BackfillHandler) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Handle(TypeProcessImage, images)
	if webhooks != nil {
		mux.Handle(TypeDeliverWebhook, webhooks)
	}
	if backfill != nil {
		mux.Handle(TypeBackfillScan, asynq.HandlerFunc(backfill.scan))
		mux.Handle(TypeBackfillImage, asynq.HandlerFunc(backfill.image))
	}
	return mux
}

// Backfiller is what the backfill handler needs from the domain.
type Backfiller interface {
	BackfillScan(ctx context.Context, profile, afterID string) (int, error)
	Backfill(ctx context.Context, imageID, profile string) error
}

// BackfillHandler runs TypeBackfillScan and TypeBackfillImage tasks. New
// uploads keep priority: the backfill queue has the lowest weight, and an
// image task steps aside (back to the queue in a second, not counted as a
// failure) while tasks wait in the images queue, so that it never holds a
// worker slot an upload could have. A task of another profile than this
// worker's (a deployment rolling) steps aside for longer, for a worker of
// its profile.
type BackfillHandler struct {
	backfiller Backfiller
	rdb        redis.UniversalClient
	log        *slog.Logger
}

// NewBackfillHandler returns a BackfillHandler; rdb is the queues' Redis.
func NewBackfillHandler(b Backfiller, rdb redis.UniversalClient, log *slog.Logger) *BackfillHandler {
	return &BackfillHandler{backfiller: b, rdb: rdb, log: log}
}

// yield is a backfill task stepping aside; RetryDelay gives it its delay
// and the server does not count it as a failure.
type yield struct {
	after  time.Duration
	reason string
}

func (y *yield) Error() string { return "backfill steps aside: " + y.reason }

// isFailure is the asynq server's IsFailure: a backfill task that steps
// aside is not failing, and keeps its retries.
func isFailure(err error) bool {
	var y *yield
	return !errors.As(err, &y)
}

func (h *BackfillHandler) scan(ctx context.Context, t *asynq.Task) error {
	var p BackfillScanPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.Profile == "" {
		return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
	}
	n, err := h.backfiller.BackfillScan(ctx, p.Profile, p.AfterID)
	if errors.Is(err, image.ErrOtherProfile) {
		return &yield{after: 30 * time.Second, reason: "another profile"}
	}
	if err == nil && n > 0 {
		h.log.InfoContext(ctx, "backfill: images queued", "count", n, "after_id", p.AfterID)
	}
	return err
}

func (h *BackfillHandler) image(ctx context.Context, t *asynq.Task) error {
	var p BackfillImagePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ImageID == "" {
		return fmt.Errorf("decode payload: %v: %w", err, asynq.SkipRetry)
	}
	// asynq's pending list of the images queue (its key layout, stable
	// since asynq 0.18).
	waiting, err := h.rdb.LLen(ctx, "asynq:{"+QueueImages+"}:pending").Result()
	if err != nil {
		return fmt.Errorf("images waiting: %w", err)
	}
	if waiting > 0 {
		return &yield{after: time.Second, reason: "images are waiting"}
	}
	ctx = logctx.With(ctx, "task_id", "backfill:"+p.ImageID, "image_id", p.ImageID)
	err = h.backfiller.Backfill(ctx, p.ImageID, p.Profile)
	if errors.Is(err, image.ErrOtherProfile) {
		return &yield{after: 30 * time.Second, reason: "another profile"}
	}
	return err
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.log.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Info(args ...any)  { a.log.Info(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Warn(args ...any)  { a.log.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Error(args ...any) { a.log.Error(fmt.Sprint(args...), "component", "asynq") }
func (a slogAdapter) Fatal(args ...any) { a.log.Error(fmt.Sprint(args...), "component", "asynq") }
