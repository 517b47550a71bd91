// Package metrics exports imagesvc's measurements in the Prometheus format:
// the worker's processing metrics (it implements image.Observer), queue
// depths from asynq, and the Go runtime and process collectors.
package metrics

import (
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imagesvc/imagesvc/internal/image"
	"github.com/imagesvc/imagesvc/internal/webhook"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RegisterQueues exports the depth, latency and archived count of every
// asynq queue (asynq_queue_size, asynq_queue_latency_seconds, …). Export
// them from one process only (the API), so an autoscaler reads them once.
func RegisterQueues(reg prometheus.Registerer, inspector *asynq.Inspector) {
	reg.MustRegister(asynqmetrics.NewQueueMetricsCollector(inspector))
}

// Processing implements image.Observer.
type Processing struct {
	stages     *prometheus.HistogramVec
	processed  *prometheus.CounterVec
	megapixels prometheus.Histogram
	depErrors  *prometheus.CounterVec
	inFlight   prometheus.Gauge
}

var _ image.Observer = (*Processing)(nil)

// NewProcessing registers the processing metrics on reg.
func NewProcessing(reg prometheus.Registerer) *Processing {
	p := &Processing{
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imagesvc_processing_stage_seconds",
			Help:    "Time spent in each stage of processing one image: fetch, decode_resize, encode, upload, database.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"stage"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesvc_images_processed_total",
			Help: "Processing attempts by result: done, failed (undecodable), retry (transient error), skipped (nothing to do).",
		}, []string{"result"}),
		megapixels: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imagesvc_source_megapixels",
			Help:    "Size of the processed sources in megapixels.",
			Buckets: []float64{0.5, 1, 2, 4, 8, 12, 16, 24, 36, 50},
		}),
		depErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesvc_dependency_errors_total",
			Help: "Failed calls to a dependency during processing: s3 or database.",
		}, []string{"dependency"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imagesvc_images_in_flight",
			Help: "Images being processed right now.",
		}),
	}
	reg.MustRegister(p.stages, p.processed, p.megapixels, p.depErrors, p.inFlight)
	// Export every series from the start, at zero, so that dashboards and
	// alerts see them before the first event.
	for _, r := range []string{image.ResultDone, image.ResultFailed, image.ResultRetry, image.ResultSkipped} {
		p.processed.WithLabelValues(r)
	}
	for _, d := range []string{"s3", "database"} {
		p.depErrors.WithLabelValues(d)
	}
	return p
}

// Stage implements image.Observer.
func (p *Processing) Stage(stage string, d time.Duration) {
	p.stages.WithLabelValues(stage).Observe(d.Seconds())
}

// Finished implements image.Observer.
func (p *Processing) Finished(result string, pixels int64) {
	p.processed.WithLabelValues(result).Inc()
	if pixels > 0 && result != image.ResultSkipped {
		p.megapixels.Observe(float64(pixels) / 1e6)
	}
}

// DependencyError implements image.Observer.
func (p *Processing) DependencyError(dep string) { p.depErrors.WithLabelValues(dep).Inc() }

// InFlight implements image.Observer.
func (p *Processing) InFlight(delta int) { p.inFlight.Add(float64(delta)) }

// Webhooks implements webhook.Observer.
type Webhooks struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
}

var _ webhook.Observer = (*Webhooks)(nil)

// NewWebhooks registers the webhook delivery metrics on reg.
func NewWebhooks(reg prometheus.Registerer) *Webhooks {
	w := &Webhooks{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesvc_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result: success, retry, failed (given up), gone (410, subscription disabled).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imagesvc_webhook_delivery_seconds",
			Help:    "Time from sending a webhook to its answer (or error).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 11),
		}),
	}
	reg.MustRegister(w.deliveries, w.latency)
	for _, r := range []string{webhook.ResultSuccess, webhook.ResultRetry, webhook.ResultFailed, webhook.ResultGone} {
		w.deliveries.WithLabelValues(r)
	}
	return w
}

// Delivered implements webhook.Observer.
func (w *Webhooks) Delivered(result string, d time.Duration) {
	w.deliveries.WithLabelValues(result).Inc()
	w.latency.Observe(d.Seconds())
}
