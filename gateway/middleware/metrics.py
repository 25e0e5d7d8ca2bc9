"""Prometheus metrics; multi-process aware when gunicorn sets PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REQUESTS = Counter("pcloud_http_requests_total", "HTTP requests", ["function", "method", "status"])
LATENCY = Histogram("pcloud_http_request_seconds", "HTTP request latency", ["function"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def observe(function: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(function, method, str(status)).inc()
    LATENCY.labels(function).observe(seconds)


def render(multiprocess_dir: str | None) -> tuple[bytes, str]:
    if multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
