"""Checks the logs of an end-to-end run (docs/design.md §7).

ARTIFACTS_DIR (default /artifacts) holds logs-<service>.jsonl (from `docker compose logs
--no-log-prefix`), access.log (nginx's file) and sensitive-values.txt (written by the e2e
suite). Every line of website, chat, migrate, secrets and nginx must be a JSON object with the
required fields; no password, cookie, token or message text may appear in any log; and
every request nginx sent to the website or the chat must be found in that service's log
under nginx's request_id; no service logged an error and nginx answered no 5xx. A missing or
empty file fails: nothing passes for lack of input.
Run explicitly, after the suite and the log collection: `pytest checks/test_logs.py`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Record = dict[str, Any]

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
SERVICE_FIELDS = {"ts", "level", "event", "service"}
NGINX_FIELDS = {
    "ts", "request_id", "remote_addr", "method", "uri", "status", "bytes_sent",
    "request_time", "upstream_addr", "upstream_status", "upstream_response_time", "user_agent",
}  # fmt: skip
# Events tied to one request or connection must name it.
NEEDS_REQUEST_ID = {"request", "connection opened", "connection closed", "handshake rejected"}
# Each service's lines name it (migrate runs the website's code, under its own name).
WRITERS = {"website": "website", "chat": "chat", "migrate": "migrate", "secrets": "secrets"}
# nginx writes each request twice, to stdout (logs-nginx.jsonl) and to access.log.
NGINX_FILES = ("logs-nginx.jsonl", "access.log")
SCANNED = (
    *(f"logs-{s}.jsonl" for s in ("website", "chat", "migrate", "secrets", "nginx", "db")),
    "access.log",
)
SHOWN = 10  # problems quoted per failure


@pytest.fixture(scope="module")
def artifacts() -> Path:
    directory = Path(os.environ.get("ARTIFACTS_DIR", "/artifacts"))
    assert directory.is_dir(), f"{directory} is not a directory (ARTIFACTS_DIR)"
    return directory


def read(path: Path) -> str:
    """A log file's text; a missing or empty file is a failure, never a pass."""
    assert path.is_file(), f"{path} is missing: collect the logs first (see ops/test)"
    text = path.read_text(errors="replace")
    assert text.strip(), f"{path} is empty"
    return text


def parse(path: Path) -> tuple[list[Record], list[str]]:
    """The JSON objects of a JSON-lines file, and a note for each line that is not one."""
    records: list[Record] = []
    bad: list[str] = []
    for number, line in enumerate(read(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(f"{path.name}:{number}: not a JSON object: {line[:160]}")
    return records, bad


def report(problems: list[str]) -> str:
    more = f"\n… and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return "\n".join(problems[:SHOWN]) + more


@pytest.mark.parametrize("service", WRITERS)
def test_service_lines_are_json(artifacts: Path, service: str) -> None:
    _, bad = parse(artifacts / f"logs-{service}.jsonl")
    assert not bad, report(bad)


@pytest.mark.parametrize("service", WRITERS)
def test_service_lines_carry_required_fields(artifacts: Path, service: str) -> None:
    records, _ = parse(artifacts / f"logs-{service}.jsonl")
    writer = WRITERS[service]
    problems = []
    for record in records:
        missing = SERVICE_FIELDS - record.keys()
        if missing:
            problems.append(f"{service}: missing {sorted(missing)} in {record}")
        elif record["service"] != writer or not RFC3339_UTC.match(str(record["ts"])):
            problems.append(
                f"{service}: bad service/ts (want {writer!r}, RFC 3339 UTC) in {record}"
            )
        elif record["event"] in NEEDS_REQUEST_ID and not record.get("request_id"):
            problems.append(f"{service}: no request_id on {record}")
    assert not problems, report(problems)


# PostgreSQL's own lines use its jsonlog fields; the entrypoint's lines use ours.
DB_SERVER_FIELDS = {"timestamp", "error_severity", "message"}


def test_db_lines_are_json_with_known_fields(artifacts: Path) -> None:
    records, bad = parse(artifacts / "logs-db.jsonl")
    assert records, "logs-db.jsonl holds no JSON log line"
    odd = [
        f"db: neither PostgreSQL's jsonlog nor the entrypoint's fields in {r}"
        for r in records
        if not (
            r.keys() >= DB_SERVER_FIELDS or (r.keys() >= SERVICE_FIELDS and r["service"] == "db")
        )
    ]
    assert not bad + odd, report(bad + odd)


@pytest.mark.parametrize("service", WRITERS)
def test_service_wrote_something(artifacts: Path, service: str) -> None:
    records, _ = parse(artifacts / f"logs-{service}.jsonl")
    assert records, f"logs-{service}.jsonl holds no JSON log line"


@pytest.mark.parametrize("service", WRITERS)
def test_service_logged_no_error(artifacts: Path, service: str) -> None:
    """The suite's hostile input gets answers, never failures: no line at error level."""
    records, _ = parse(artifacts / f"logs-{service}.jsonl")
    errors = [
        f"{service}: {r}" for r in records if str(r.get("level")).lower() in ("error", "critical")
    ]
    assert not errors, report(errors)


def test_nginx_answered_no_5xx(artifacts: Path) -> None:
    """Whatever the suite sent, nothing failed on the server side."""
    records, _ = parse(artifacts / "access.log")
    failed = [
        f"{r.get('status')} {r.get('method')} {r.get('uri')} ({r.get('upstream_addr')})"
        for r in records
        if int(r.get("status", 0)) >= 500
    ]
    assert not failed, report(failed)


@pytest.mark.parametrize("name", NGINX_FILES)
def test_nginx_lines_are_json(artifacts: Path, name: str) -> None:
    _, bad = parse(artifacts / name)
    assert not bad, report(bad)


@pytest.mark.parametrize("name", NGINX_FILES)
def test_nginx_lines_carry_design_fields(artifacts: Path, name: str) -> None:
    records, _ = parse(artifacts / name)
    assert records, f"{name} holds no JSON log line"
    problems = [
        f"{name}: missing {sorted(NGINX_FIELDS - r.keys())} in {r}"
        for r in records
        if NGINX_FIELDS - r.keys()
    ]
    assert not problems, report(problems)


def sensitive_values(artifacts: Path) -> list[str]:
    return [s for s in read(artifacts / "sensitive-values.txt").splitlines() if s]


def test_sensitive_values_recorded(artifacts: Path) -> None:
    # read() fails on a missing or empty file: run the e2e suite first, it writes them.
    assert sensitive_values(artifacts), "sensitive-values.txt lists no value"


def test_no_sensitive_value_in_any_log(artifacts: Path) -> None:
    secrets = sensitive_values(artifacts)
    assert secrets, "sensitive-values.txt lists no value: nothing to look for"
    leaks = []
    for name in SCANNED:
        path = artifacts / name
        assert path.is_file(), f"{path} is missing: collect the logs first (see ops/test)"
        text = path.read_text(errors="replace")
        leaks += [
            f"{name} contains a value the tests used: {s[:12]}…" for s in secrets if s in text
        ]
    assert not leaks, f"{len(leaks)} leak(s) of {len(secrets)} values:\n" + report(leaks)


def abandoned(r: Record) -> bool:
    """Its client left before the service answered anything (499, no upstream status): it may
    never have reached the service, as nginx drops it while still connecting (a browser
    cancelling a navigation at once)."""
    return str(r.get("status")) == "499" and r.get("upstream_status") == "-"


def lost_requests(
    artifacts: Path, upstream_port: str, service: str, keep: Callable[[Record], bool]
) -> list[str]:
    """Requests nginx sent to a service (by port, filtered, not abandoned) that its log never
    mentions."""
    logged = parse(artifacts / f"logs-{service}.jsonl")[0]
    ids = {r["request_id"] for r in logged if r.get("request_id")}
    nginx, _ = parse(artifacts / "logs-nginx.jsonl")
    sent = [r for r in nginx if str(r.get("upstream_addr", "")).endswith(upstream_port)
            and not abandoned(r) and keep(r)]  # fmt: skip
    assert sent, f"nginx sent nothing to {service} (no upstream_addr ending {upstream_port})"
    return [
        f"{r.get('method')} {r.get('uri')} ({r.get('request_id')}) not in the {service} log"
        for r in sent
        if not r.get("request_id") or r["request_id"] not in ids
    ]


def test_website_requests_correlated(artifacts: Path) -> None:
    lost = lost_requests(artifacts, ":8000", "website", lambda r: True)
    assert not lost, "requests nginx sent to the website, missing from its log:\n" + report(lost)


def test_chat_upgrades_correlated(artifacts: Path) -> None:
    lost = lost_requests(artifacts, ":8001", "chat", lambda r: str(r.get("status")) == "101")
    assert not lost, "WebSockets nginx upgraded, missing from the chat's log:\n" + report(lost)
