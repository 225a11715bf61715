"""`python -m website`: serve the app with uvicorn, logging through our JSON setup."""

import uvicorn

from website.config import get_settings
from website.logging import configure_logging


def main() -> None:
    configure_logging()
    settings = get_settings()
    uvicorn.run(
        "website.app:app",
        host=settings.host,
        port=settings.port,
        proxy_headers=True,
        forwarded_allow_ips="*",  # only nginx can reach this port
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
