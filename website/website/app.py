"""The FastAPI application: create_app(settings) wires routers, error pages and the lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool
from starlette.exceptions import HTTPException as StarletteHTTPException

from website import cookies
from website.chat_control import ChatControl, bus_client
from website.config import Settings
from website.db import autocommit, create_engine, create_sessionmaker
from website.deps import Redirect
from website.headers import SecurityHeadersMiddleware
from website.logging import get_logger
from website.metrics import track_pool
from website.middleware import RequestContextMiddleware
from website.passwords import Hasher, HasherBusy
from website.routes import account, accounts, api, health, rooms
from website.services import Services
from website.sessions import purge_expired
from website.templating import render, see_other
from website.throttle import Throttle
from website.tokens import TokenIssuer
from website.tracing import instrument_app, instrument_engine, uninstrument_engine

log = get_logger(__name__)
HTTP_TIMEOUT_S = 3
HASHER_BUSY_RETRY_S = 2


async def purge_sessions(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Every interval, delete a bounded batch of expired sessions (the rest wait a turn)."""
    while True:
        await asyncio.sleep(settings.session_purge_interval_s)
        try:
            async with sessionmaker() as db:
                purged = await purge_expired(db, settings, settings.session_purge_batch)
        except Exception as exc:  # the database may be away for a while; try next time
            log.warning("session purge failed", error=type(exc).__name__)
            continue
        if purged:
            log.info("expired sessions purged", count=purged)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the collaborators once, keep them on app.state, release them at shutdown."""
    settings: Settings = app.state.settings
    # Loaded first: fail at start, not at the first token, if the key is missing.
    issuer = TokenIssuer.from_pem_file(
        settings.jwt_signing_key_file, settings.chat_token_ttl_seconds
    )
    engine = create_engine(settings)
    traced = instrument_engine(engine)
    if isinstance(engine.pool, QueuePool):
        track_pool(engine.pool)
    sessionmaker = create_sessionmaker(engine)
    bus = bus_client(settings)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http, bus:
        app.state.services = Services(
            engine=engine,
            sessionmaker=sessionmaker,
            read_engine=autocommit(engine),
            issuer=issuer,
            http=http,
            bus=bus,
            chat_control=ChatControl(bus, issuer),
            hasher=Hasher(settings.hash_concurrency, settings.hash_queue),
            login_throttle=Throttle(
                settings.login_max_failures, settings.login_window_s, settings.throttle_max_keys
            ),
            register_throttle=Throttle(
                settings.register_max_attempts,
                settings.register_window_s,
                settings.throttle_max_keys,
            ),
        )
        purger = asyncio.create_task(purge_sessions(sessionmaker, settings))
        log.info("website started", port=settings.port, metrics_port=settings.metrics_port)
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await engine.dispose()
            if traced:
                uninstrument_engine()
            log.info("website stopped")


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if _wants_html(request):
        # The phrase lets the page drop a detail that only repeats it ("Not Found").
        phrase = HTTPStatus(exc.status_code).phrase
        return render(
            request,
            "error.html",
            exc.status_code,
            status=exc.status_code,
            detail=exc.detail,
            status_phrase=phrase,
        )
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    # Clear, field-by-field errors without echoing the submitted values back.
    errors = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
    if _wants_html(request):
        detail = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors)
        return render(request, "error.html", 400, status=400, detail=detail)
    return JSONResponse({"detail": errors}, status_code=400)


async def _hasher_busy(request: Request, exc: HasherBusy) -> Response:
    detail = "The site is busy right now. Please try again in a moment."
    headers = {"Retry-After": str(HASHER_BUSY_RETRY_S)}
    if _wants_html(request):
        response = render(request, "error.html", 503, status=503, detail=detail)
        response.headers.update(headers)
        return response
    return JSONResponse({"detail": detail}, 503, headers=headers)


async def _redirect(request: Request, exc: Redirect) -> Response:
    response = see_other(exc.location)
    if exc.forget_session:
        settings: Settings = request.app.state.settings
        cookies.delete_cookie(settings, response, cookies.session_name(settings))
    return response


# The database is down, restarting or unreachable: connection-level failures only (a
# constraint violation is still the route's business, and a bug still a 500).
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    SQLAlchemyTimeoutError,
    OSError,
)
DATABASE_RETRY_AFTER_S = 5


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """503 with the friendly page (or JSON), never a traceback: the pool reconnects by itself
    once the database is back, so the next request after that succeeds."""
    log.warning("database unavailable", error=type(exc).__name__, path=request.url.path)
    detail = "Parley's database is briefly unavailable. Try again in a moment."
    headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    if _wants_html(request):
        response = render(request, "error.html", 503, status=503, detail=detail)
        response.headers.update(headers)
        return response
    return JSONResponse({"detail": detail}, 503, headers=headers)


def create_app(settings: Settings) -> FastAPI:
    """A new app for these settings; nothing is opened until its lifespan starts."""
    app = FastAPI(title="Parley website", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # The chat token first: routing (and the tracer's route lookup) tries routes in order,
    # and it is the hottest; no other path matches it.
    app.include_router(api.token_router)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(accounts.router)
    app.include_router(accounts.logout_router)
    app.include_router(rooms.router)
    app.include_router(account.router)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(Redirect)(_redirect)
    app.exception_handler(HasherBusy)(_hasher_busy)
    for unreachable in DATABASE_UNREACHABLE:
        app.exception_handler(unreachable)(_database_unavailable)
    instrument_app(app)
    return app
