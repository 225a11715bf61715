"""`python -m website`: set up the process (logs, traces, metrics port), then serve the app."""

import uvicorn
from prometheus_client import start_http_server

from website.app import create_app
from website.config import Settings
from website.logging import BatchedStdout, configure_logging
from website.tracing import configure_tracer_provider


def main() -> None:
    configure_logging(out=BatchedStdout())  # lines in batches (docs/design.md §7)
    configure_tracer_provider()
    settings = Settings()
    start_http_server(settings.metrics_port)
    # X-Forwarded-* are trusted only from FORWARDED_ALLOW_IPS: without it, a client's own
    # headers could choose its address. HTTPS is known from PUBLIC_URL, not from a header.
    trusted = settings.forwarded_allow_ips.strip()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
