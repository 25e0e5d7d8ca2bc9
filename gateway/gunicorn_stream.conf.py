"""gunicorn settings for the `stream` process (gateway/stream_server.py): one asyncio worker holds every stream."""

from runtime.settings import load_settings

_settings = load_settings()
bind = _settings.stream_bind
workers = 1  # one change stream and one event loop per process; scale out with more processes
worker_class = "asgi"
worker_connections = 4000  # open streams (and proxied connections) one worker accepts
timeout = 60
graceful_timeout = 5  # open streams are cut at shutdown; browsers resume with Last-Event-ID
keepalive = 75  # longer than a heartbeat: the gateway's pooled connection to us stays usable
accesslog = None
control_socket_disable = True  # the gateway gunicorn on this box may hold the default control socket
