package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imagesvc/imagesvc/internal/failure"
)

// httpMetrics are the API's own Prometheus metrics.
type httpMetrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	uploadBytes prometheus.Histogram
	rejected    *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesvc_http_requests_total",
			Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imagesvc_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		uploadBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imagesvc_upload_bytes",
			Help:    "Size of accepted uploads.",
			Buckets: prometheus.ExponentialBuckets(16<<10, 2, 12),
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagesvc_uploads_rejected_total",
			Help: "Uploads refused, by reason: too_large, unsupported_type, too_many_pixels, bad_request, rate_limited, too_slow, unavailable.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.requests, m.duration, m.uploadBytes, m.rejected)
	for _, r := range []string{"too_large", "unsupported_type", "too_many_pixels", "bad_request", "rate_limited", "too_slow", "unavailable"} {
		m.rejected.WithLabelValues(r) // exported at zero from the start
	}
	return m
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// rejectedUpload counts a refused upload under the reason its error maps to.
func (m *httpMetrics) rejectedUpload(err error) {
	status, _ := describe(err)
	reason := "bad_request"
	switch {
	case status == 413:
		reason = "too_large"
	case status == 415:
		reason = "unsupported_type"
	case failure.CodeOf(err) == "too_many_pixels":
		reason = "too_many_pixels"
	case status == 429:
		reason = "rate_limited"
	case status == 408:
		reason = "too_slow"
	case status >= 500:
		reason = "unavailable"
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// methodLabel is the method as a metric label: one of the methods the API
// answers, or OTHER. A client can send any token as a method, and each one
// would be a new series (300,000 invented methods made /metrics 165 MB).
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
