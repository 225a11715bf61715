"""The control port over HTTP: the website's signed notices, as GET requests, become control
commands. Internal only (nginx never routes here). To take commands from a message bus
instead, replace this module: control.Control and notices.NoticeVerifier stay as they are.

    GET /rooms/{room}/deleted     Authorization: Bearer <notice>  -> 4404 to the room's sockets
    GET /users/{user_id}/revoked  Authorization: Bearer <notice>  -> 4401 to all the user's
                                  sockets (or one session's, with the notice's `sid`)
    200 "closed N", 401 bad notice, 403 valid token of another kind or target, 404 other paths.

Built on a second websockets server whose process_request answers every request itself, so
nothing here is ever upgraded. GET only, because the websockets server parses nothing else.
Rejections count in chat_control_rejections_total{reason}, apart from the handshakes'."""

from __future__ import annotations

import re
from http import HTTPStatus

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from . import metrics, paths, telemetry, wire
from .auth import AuthError, extract_bearer, forbidden
from .control import CloseRoom, Command, Control, RevokeUser
from .notices import NoticeVerifier

log = structlog.get_logger()

_ROOM = re.compile(wire.ROOM_NAME_PATTERN)
_USER_ID = re.compile(wire.USER_ID_PATTERN)


def route(path: str) -> Command | None:
    """The command a path asks for (to be confirmed by the notice), None if not a route."""
    if room := paths.name_in(path, wire.CONTROL_ROOM_PREFIX, wire.CONTROL_ROOM_SUFFIX, _ROOM):
        return CloseRoom(room)
    if user := paths.name_in(path, wire.CONTROL_USER_PREFIX, wire.CONTROL_USER_SUFFIX, _USER_ID):
        return RevokeUser(user)
    return None


def _confirm(asked: Command, notice: Command) -> None:
    """The notice must say what the path asks: same kind, same room or user (the path has no
    place for a revocation's `sid`, which only narrows it)."""
    if type(asked) is not type(notice):
        raise forbidden("notice has another purpose", "wrong_purpose")
    if isinstance(notice, RevokeUser):
        notice = RevokeUser(notice.user_id)
    if asked != notice:
        reason = "wrong_room" if isinstance(asked, CloseRoom) else "wrong_user"
        raise forbidden("notice is for another " + reason.removeprefix("wrong_"), reason)


class ControlHttp:
    def __init__(self, control: Control, notices: NoticeVerifier) -> None:
        self._control = control
        self._notices = notices

    async def process_request(self, conn: ServerConnection, request: Request) -> Response:
        path = paths.path_of(request.path)
        request_id = telemetry.request_id(request.headers)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        rt = telemetry.RequestTrace("control.request", request.headers, path, request_id)
        try:
            response = await self._answer(conn, request, path, rt)
        except BaseException as exc:
            rt.end(error=exc)
            raise
        rt.end(response.status_code)
        return response

    async def _answer(
        self, conn: ServerConnection, request: Request, path: str, rt: telemetry.RequestTrace
    ) -> Response:
        try:
            if (asked := route(path)) is None:
                raise AuthError(HTTPStatus.NOT_FOUND, "not_found", "not found")
            notice = await self._notices.verify(extract_bearer(request.headers))
            _confirm(asked, notice)
        except AuthError as exc:
            metrics.CONTROL_REJECTIONS.labels(exc.reason).inc()
            rt.span.set_attribute(telemetry.REASON, exc.reason)
            log.info("control rejected", reason=exc.reason, status=exc.status.value,
                     path=path[:200])  # fmt: skip
            return conn.respond(exc.status, exc.detail + "\n")
        closed = self._control.apply(notice)
        return conn.respond(HTTPStatus.OK, f"closed {closed}\n")


async def _never_upgraded(conn: ServerConnection) -> None:
    raise AssertionError("process_request answers every control request")


def build(control: Control, notices: NoticeVerifier, host: str, port: int) -> Server:
    """The (not yet started) control listener: `async with build(...) as server:`."""
    return serve(
        _never_upgraded,
        host,
        port,
        process_request=ControlHttp(control, notices).process_request,
        compression=None,
        open_timeout=5,  # a request must arrive whole and soon
        server_header="parley-chat",
    )


