"""Prometheus metrics of one server: request counts by endpoint and status, latency histograms,
batch sizes and queue depth. A registry per app, so tests and several apps do not collide."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("supremum_requests_total", "HTTP requests", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("supremum_request_seconds", "request latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("supremum_batch_size", "texts per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.decode_batch = Histogram("supremum_decode_batch_size", "sequences per decoding forward pass",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.queue_depth = Gauge("supremum_queue_depth", "texts and generations waiting or running",
                                 registry=self.registry)

    def install(self, app) -> None:
        @app.middleware("http")
        async def measure(request, call_next):
            t0 = time.perf_counter()
            response = await call_next(request)
            # the route template, not the raw path: random paths must not create new series
            endpoint = next((r.path for r in app.router.routes
                             if r.matches(request.scope)[0] == Match.FULL), "other")
            self.requests.labels(endpoint, str(response.status_code)).inc()
            self.latency.labels(endpoint).observe(time.perf_counter() - t0)
            return response

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
