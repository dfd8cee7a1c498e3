package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics (public, docs/api.md#endpoints): Prometheus text format. The API
// counts and times every request in a registry of its own and serves it
// together with the node's (Raft, state machine, gossip, forwarding, snapshots,
// logins, Go runtime and process). Requests are labelled by echo's route
// pattern, never the raw path, which may hold ids or tokens; a request that
// matched no route is "unmatched".

const metricsRoute = "/metrics"

// unmatchedRoute labels requests that matched no route.
const unmatchedRoute = "unmatched"

// metricsSource is what a backend with its own metrics offers
// (*node.Node does).
type metricsSource interface {
	Metrics() prometheus.Gatherer
}

// metricsRoutes serves GET /metrics and installs the request metrics.
func (s *Server) metricsRoutes(e *echo.Echo) {
	reg := prometheus.NewRegistry()
	gatherers := prometheus.Gatherers{reg}
	if src, ok := s.cfg.Backend.(metricsSource); ok {
		gatherers = append(gatherers, src.Metrics())
	} else {
		// The node's registry has the runtime and process collectors; a
		// backend without one gets them here.
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := newHTTPMetrics(reg)
	e.Use(m.middleware(e))
	e.GET(metricsRoute, echo.WrapHandler(promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})))
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sessiond_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by route pattern and method.",
			// Validations take microseconds; writes wait for a Raft commit.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// middleware counts and times each request. It runs inside the others, so
// it sees the route echo matched; an error the handler returns is counted
// with the status handleError will answer.
func (m *httpMetrics) middleware(e *echo.Echo) echo.MiddlewareFunc {
	var once sync.Once
	var routes map[string]bool // route patterns registered, any method
	known := func(path string) bool {
		once.Do(func() {
			routes = make(map[string]bool)
			for _, r := range e.Routes() {
				routes[r.Path] = true
			}
		})
		return routes[path]
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			start := time.Now()
			defer func() {
				p := recover()
				route := c.Path()
				if !known(route) || errors.Is(err, echo.ErrNotFound) {
					route = unmatchedRoute
				}
				method := methodLabel(c.Request().Method)
				m.requests.WithLabelValues(route, method, strconv.Itoa(answeredStatus(c, err, p != nil))).Inc()
				m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
				if p != nil {
					panic(p) // for middleware.Recover
				}
			}()
			return next(c)
		}
	}
}

// answeredStatus is the status the client gets for this request.
func answeredStatus(c echo.Context, err error, panicked bool) int {
	res := c.Response()
	switch {
	case res.Committed:
		return res.Status
	case panicked:
		return http.StatusInternalServerError
	case err != nil:
		if ae := toAPIError(err); ae != nil {
			return ae.Status
		}
		return http.StatusInternalServerError
	}
	return res.Status
}

// methodLabel keeps the method label to a fixed set: anyone may send any
// method name.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// slogPrinter gives promhttp's error log to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("serving metrics", "error", fmt.Sprint(v...))
}
