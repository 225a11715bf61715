"""What text the site accepts: no control characters anywhere, nothing invisible in names.

PostgreSQL cannot store NUL (asyncpg refuses it), a lone surrogate cannot be encoded at all,
and U+FFFD is what the form parser leaves of bytes that were not UTF-8; all three would
otherwise surface as 500s or silently mangled data. Bidi overrides and zero-width characters
in a display name or room title let one name pose as another, or reverse the text around it.
"""

import unicodedata

# Tab, newline and carriage return are ordinary in text (and collapsed in names and titles).
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_REPLACEMENT = "\ufffd"


def form_problem(value: str) -> str | None:
    """Why a submitted form value is refused, or None."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            return "must not contain control characters (such as NUL)"
        if category == "Cs" or char == _REPLACEMENT:
            return "must be valid UTF-8 text"
    return None


def has_invisible(value: str) -> bool:
    """True for format characters: bidi controls (U+202A-202E, U+2066-2069), zero-width
    spaces and joiners (U+200B-200D), U+FEFF, soft hyphens and the like (category Cf)."""
    return any(unicodedata.category(char) == "Cf" for char in value)
