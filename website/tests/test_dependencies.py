"""Every route and dependency is a coroutine: FastAPI runs a plain `def` one in a worker
thread, a thread hop per request that cost the token route about a fifth of its throughput."""

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from website.routes import account, accounts, api, health, rooms

# Every router create_app includes (website/app.py).
ROUTERS = (
    health.router,
    api.token_router,
    api.router,
    accounts.router,
    accounts.logout_router,
    rooms.router,
    account.router,
)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def test_no_route_or_dependency_runs_in_a_thread() -> None:
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    assert any(route.path == "/api/rooms/{name}/token" for route in routes)
    in_threads = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in (route.endpoint, *_calls(route.dependant))
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    }
    assert not in_threads
