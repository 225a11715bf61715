"""Prometheus metrics of the website (docs/design.md §8); __main__ serves them on their own port.

One uvicorn process serves the site (it is async; scale out with replicas), so the default
registry is whole and prometheus-client's multiprocess mode is not needed.
"""

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.pool import QueuePool

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request",
    ["method", "route"],
    # Pages hit the database and argon2 (about 50-100 ms); tail up to 10 s.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOGINS = Counter("website_logins_total", "Login attempts", ["result"])
TOKENS_ISSUED = Counter("website_tokens_issued_total", "Chat tokens issued")
DB_POOL_SIZE = Gauge("website_db_pool_size", "Configured database pool size")
DB_POOL_CHECKED_OUT = Gauge("website_db_pool_checked_out", "Database connections in use")
DB_POOL_OVERFLOW = Gauge("website_db_pool_overflow", "Database connections above the pool size")


def track_pool(pool: QueuePool) -> None:
    """Read the pool's numbers at scrape time, so they are never stale."""
    DB_POOL_SIZE.set_function(pool.size)
    DB_POOL_CHECKED_OUT.set_function(pool.checkedout)
    DB_POOL_OVERFLOW.set_function(lambda: max(pool.overflow(), 0))


THROTTLED = Counter(
    "website_throttled_total", "Requests refused by a per-account throttle (429)", ["kind"]
)
for _kind in ("login", "register"):
    THROTTLED.labels(_kind)
HASH_BUSY = Counter(
    "website_hash_busy_total", "Requests refused because every password-hashing slot was taken"
)
