"""The FastAPI application: routers, static files, error pages, lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException

from website.config import get_settings
from website.db import get_engine
from website.logging import configure_logging, get_logger
from website.metrics import track_pool
from website.middleware import RequestContextMiddleware
from website.routes import api, health, pages
from website.templating import render
from website.tokens import get_issuer
from website.tracing import configure_tracing

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    get_issuer()  # fail at start, not at the first token, if the key is missing
    track_pool(get_engine().pool)
    start_http_server(settings.metrics_port)
    log.info("website started", port=settings.port, metrics_port=settings.metrics_port)
    yield
    await get_engine().dispose()
    log.info("website stopped")


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def create_app() -> FastAPI:
    app = FastAPI(title="Parley website", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestContextMiddleware)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    configure_tracing(app, get_engine())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            return render(
                request, "error.html", exc.status_code, status=exc.status_code, detail=exc.detail
            )
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # Clear, field-by-field errors without echoing the submitted values back.
        errors = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=400)

    return app


configure_logging()
app = create_app()
