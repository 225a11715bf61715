"""What a message's text (and any client string the chat echoes) may contain
(docs/design.md §5, "Text").

- Never: code points that are not characters — lone surrogates (which JSON can smuggle in as
  `"\\ud800"`, and which could not even be encoded to UTF-8 for the other members) and the
  noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF); control characters (C0, DEL, C1) other
  than newline and tab.
- Not in message text: the bidirectional embedding, override and isolate controls
  (U+202A..U+202E, U+2066..U+2069), which can make a message display as something else
  (and leak into the text around it). The implicit marks (LRM, RLM, ALM) stay.
- Zero-width characters (ZWSP, ZWNJ, ZWJ, word joiner, BOM) stay: emoji sequences and several
  scripts need them. Text made only of them (and whitespace and marks) is blank."""

from __future__ import annotations

import re

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
_INVALID = re.compile(f"[\ud800-\udfff{_NONCHARACTERS}]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but \t (09) and \n (0a)
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
_INVISIBLE = re.compile(r"[\s\u200b-\u200f\u2060\ufeff\u061c]+")


def unsendable(value: str) -> bool:
    """True for strings holding a non-character or a control other than \\n and \\t."""
    return bool(_INVALID.search(value) or _CONTROL.search(value))


def problem(text: str) -> str | None:
    """Why the message text is refused (the error frame's detail), None if it is fine."""
    if _INVALID.search(text):
        return "text contains code points that are not characters"
    if _CONTROL.search(text):
        return "text contains control characters (only newline and tab are allowed)"
    if _BIDI_CONTROL.search(text):
        return "text contains bidirectional override or isolate characters"
    if not _INVISIBLE.sub("", text):
        return "text must be a non-blank string"
    return None
