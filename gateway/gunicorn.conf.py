"""gunicorn settings for the gateway (and for a function deployed on its own)."""

import os
import shutil

from runtime.settings import load_settings

_settings = load_settings()
bind = _settings.bind
workers = 2
threads = 16
worker_class = "gthread"
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = None  # the gateway writes structured access logs itself
# per pod/host: PROMETHEUS_MULTIPROC_DIR when set (Kubernetes mounts an emptyDir there), else under the data dir
_metrics = _settings.metrics_dir or str(_settings.data_dir / "metrics")


def on_starting(server):
    shutil.rmtree(_metrics, ignore_errors=True)
    os.makedirs(_metrics, exist_ok=True)


os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", _metrics)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# The master imports the code once (gateway and every function module: imports do no work, the gateway and its
# clients are still built in each worker on its first request) and freezes those objects out of the garbage
# collector, so the forked workers share those pages instead of each holding its own copy (bench_footprint).
preload_app = True


def when_ready(server):
    import gc

    from gateway.routing import FUNCTIONS

    for spec in FUNCTIONS:
        spec.load_factory()
    gc.freeze()
