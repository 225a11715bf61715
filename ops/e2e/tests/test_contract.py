"""The wire contract: docs/design.md's values, the website's and the chat's `wire` modules and
the chat page all agree (docs/design.md, section 6).

The two services share no code; each keeps its own small `wire` module. The compose file for
the tests mounts docs/ and both packages read-only under CONTRACT_DIR."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from types import ModuleType

import pytest

from support import Client

CONTRACT_DIR = Path(os.environ.get("CONTRACT_DIR", "/contract"))
MARKER = "<!-- wire-contract"
# The constants the chat page cannot work without.
PAGE_NEEDS = {"SUBPROTOCOL", "BEARER_PREFIX", "CLOSE_ROOM_DELETED", "CLOSE_SESSION_ENDED",
              "CLOSE_POLICY_VIOLATION", "MAX_TEXT_CHARS"}  # fmt: skip


def design_contract() -> dict[str, object]:
    text = (CONTRACT_DIR / "docs" / "design.md").read_text()
    assert MARKER in text, "docs/design.md lost its wire-contract block"
    block = re.search(r"```json\n(.*?)\n```", text[text.index(MARKER) :], re.DOTALL)
    assert block, "no ```json block after the wire-contract marker in docs/design.md"
    contract = json.loads(block.group(1))
    assert isinstance(contract, dict) and len(contract) >= 20, contract
    return contract


def load(service: str) -> ModuleType:
    """A service's wire module, loaded by path: it imports nothing from its package."""
    path = CONTRACT_DIR / service / "wire.py"
    spec = importlib.util.spec_from_file_location(f"{service}_wire", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(value: object) -> object:
    """JSON's view of a value: tuples and frozensets become lists."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(plain(v) for v in value)  # type: ignore[type-var]
    return value


@pytest.mark.parametrize("service", ["website", "chat"])
def test_each_service_holds_the_designed_values(service: str) -> None:
    contract = design_contract()
    module = load(service)
    missing = sorted(name for name in contract if not hasattr(module, name))
    assert not missing, f"{service}/wire.py does not define {missing}"
    differ = {
        name: (plain(getattr(module, name)), expected)
        for name, expected in contract.items()
        if plain(getattr(module, name)) != expected
    }
    assert not differ, f"{service}/wire.py (got, designed): {differ}"


def test_the_room_pattern_is_one_pattern() -> None:
    """The same pattern in the regex engines that use it: Python's and the database's."""
    pattern = re.compile(str(design_contract()["ROOM_NAME_PATTERN"]))
    for good in ("abc", "a-b", "r-" + "x" * 30, "123"):
        assert pattern.fullmatch(good), good
    for bad in ("ab", "-ab", "ab-", "AB", "a_b", "a" * 33, "a/b", "a.b"):
        assert not pattern.fullmatch(bad), bad


async def test_the_chat_page_gets_its_constants_from_the_website(alice: Client, room: str) -> None:
    contract = design_contract()
    page = await alice.page(f"/rooms/{room}")
    block = page.by_id("parley-wire")
    assert block is not None, "the chat page has no #parley-wire data block"
    assert block.attrs.get("type") == "application/json", block.attrs
    embedded = json.loads(block.text)
    assert isinstance(embedded, dict)
    assert embedded.keys() >= PAGE_NEEDS, f"missing {sorted(PAGE_NEEDS - embedded.keys())}"
    differ = {k: (v, contract.get(k)) for k, v in embedded.items() if contract.get(k) != v}
    assert not differ, f"page (got, designed): {differ}"
