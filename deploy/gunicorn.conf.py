"""gunicorn configuration for sites that standardise on gunicorn.

    gunicorn -c deploy/gunicorn.conf.py

granian (`tracetrack serve`) measured faster here; see bench/RESULTS.md.
With TRACETRACK_WORKER_CLASS=gevent (pip install "tracetrack[gunicorn]"),
never preload: psycopg must be imported after gevent has monkey-patched.
"""

import os

_cpus = os.cpu_count() or 1

wsgi_app = "tracetrack_api.wsgi:create()"
bind = os.environ.get("TRACETRACK_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_CONCURRENCY", _cpus))
worker_class = os.environ.get("TRACETRACK_WORKER_CLASS", "gthread")
threads = int(os.environ.get("TRACETRACK_THREADS", "6"))
worker_connections = int(os.environ.get("TRACETRACK_WORKER_CONNECTIONS", "100"))
preload_app = False
keepalive = 5
timeout = 30
graceful_timeout = 20
max_requests = 50_000
max_requests_jitter = 5_000
accesslog = None
errorlog = "-"

# One pool per worker, as large as the concurrency a worker can use, so
# workers x pool stays well below PostgreSQL's max_connections (100 default).
os.environ.setdefault("TRACETRACK_POOL_MAX_SIZE", str(threads if worker_class == "gthread" else 8))


def on_starting(server):
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("gunicorn needs DATABASE_URL (the embedded server is for `tracetrack serve`)")
    if not os.environ.get("TRACETRACK_SECRET_KEY"):
        raise SystemExit("set TRACETRACK_SECRET_KEY: every worker must sign tokens with the same key")
