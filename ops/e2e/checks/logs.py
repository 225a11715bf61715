"""Checks the logs of an end-to-end run (issue 3, DESIGN §6).

Usage: python checks/logs.py DIR — DIR holds logs-<service>.jsonl (from `docker compose logs
--no-log-prefix`), access.log (nginx's file) and sensitive-values.txt (written by the e2e
suite). Every line of website, chat, migrate and nginx must be a JSON object with the
required fields; no password, cookie, token or message text may appear in any log; and
every request nginx sent to the website or the chat must be found in that service's log
under nginx's request_id. Prints `N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
SERVICE_FIELDS = {"ts", "level", "event", "service"}
NGINX_FIELDS = {
    "ts", "request_id", "remote_addr", "method", "uri", "status", "bytes_sent",
    "request_time", "upstream_addr", "upstream_status", "upstream_response_time", "user_agent",
}  # fmt: skip
# Events tied to one request or connection must name it.
NEEDS_REQUEST_ID = {"request", "connection opened", "connection closed", "handshake rejected"}


def parse(path: Path) -> tuple[list[dict], list[str]]:
    records, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
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


def service_problems(records: list[dict], service: str) -> list[str]:
    problems = []
    for record in records:
        missing = SERVICE_FIELDS - record.keys()
        if missing:
            problems.append(f"{service}: missing {sorted(missing)} in {record}")
        elif record["service"] != service or not RFC3339_UTC.match(str(record["ts"])):
            problems.append(f"{service}: bad service/ts in {record}")
        elif record["event"] in NEEDS_REQUEST_ID and not record.get("request_id"):
            problems.append(f"{service}: no request_id on {record}")
    return problems


def main(directory: Path) -> int:
    results: list[tuple[str, list[str]]] = []

    def check(name: str, problems: list[str]) -> None:
        results.append((name, problems))

    logs: dict[str, list[dict]] = {}
    # migrate runs the website's code (Alembic), so its lines are the website's.
    for service, writer in (("website", "website"), ("chat", "chat"), ("migrate", "website")):
        records, bad = parse(directory / f"logs-{service}.jsonl")
        logs[service] = records
        check(f"{service} lines are JSON", bad)
        check(f"{service} lines carry the required fields", service_problems(records, writer))
        check(f"{service} wrote something", [] if records else [f"{service}: no log lines"])

    # nginx writes each request twice, to stdout (logs-nginx.jsonl) and to access.log:
    # both copies are checked; the stdout copy is the one correlated below.
    for name in ("logs-nginx.jsonl", "access.log"):
        records, bad = parse(directory / name)
        check(f"nginx {name} lines are JSON", bad)
        check(
            f"nginx {name} lines carry the DESIGN §6 fields",
            [f"{name}: missing {sorted(NGINX_FIELDS - r.keys())}" for r in records
             if NGINX_FIELDS - r.keys()] or ([] if records else [f"{name}: empty"]),
        )  # fmt: skip
        if name == "logs-nginx.jsonl":
            logs["nginx"] = records

    secrets = [s for s in (directory / "sensitive-values.txt").read_text().splitlines() if s]
    leaks = []
    for path in [*sorted(directory.glob("logs-*.jsonl")), directory / "access.log"]:
        text = path.read_text(errors="replace")
        leaks += [f"{path.name} contains a value the tests used: {s[:12]}…" for s in secrets
                  if s in text]  # fmt: skip
    check(f"none of {len(secrets)} passwords/cookies/tokens/texts in any log", leaks)
    if not secrets:
        check("the e2e suite recorded its sensitive values", ["sensitive-values.txt is empty"])

    def followed(upstream_port: str, service: str, keep: Callable[[dict], bool]) -> list[str]:
        ids = {r.get("request_id") for r in logs[service]}
        sent = [r for r in logs["nginx"]
                if str(r.get("upstream_addr", "")).endswith(upstream_port) and keep(r)]  # fmt: skip
        lost = [f"{r['method']} {r['uri']} ({r['request_id']}) not in the {service} log"
                for r in sent if r["request_id"] not in ids]  # fmt: skip
        return lost or ([] if sent else [f"nginx sent nothing to {service}"])

    check(
        "each request nginx sent to the website is in its log by request_id",
        followed(":8000", "website", lambda r: True),
    )
    check(
        "each WebSocket nginx upgraded is in the chat's log by request_id",
        followed(":8001", "chat", lambda r: str(r.get("status")) == "101"),
    )

    failed = 0
    for name, problems in results:
        print(("ok    " if not problems else "FAIL  ") + name)
        for problem in problems[:10]:
            print("        " + problem)
        failed += bool(problems)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/artifacts")))
