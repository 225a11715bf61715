"""The body check every unsafe route runs after CSRF: the right encoding and clean text.

Pages take forms (urlencoded or multipart), the API takes no body at all; anything else is a
clear 415 instead of a form read as empty. Every form value is checked for characters the
database cannot store or that only a hostile client sends (website/text.py): a 400 naming the
field, never a 500.
"""

from fastapi import HTTPException, Request, status

from website.text import form_problem

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Named in answers; any other field is "a field", so an answer never echoes what was sent.
KNOWN_FIELDS = frozenset(
    {
        "csrf_token",
        "email",
        "password",
        "display_name",
        "name",
        "title",
        "next",
        "current_password",
        "new_password",
        "new_password_again",
    }
)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


async def check_body(request: Request) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    # The scope's path, not request.url (which builds and parses a whole URL each time).
    if request.scope["path"].startswith("/api/"):
        if _has_body(request):
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "This endpoint takes no request body."
            )
        return
    if media_type not in FORM_TYPES and (media_type or _has_body(request)):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "Send forms as application/x-www-form-urlencoded or multipart/form-data.",
        )
    for field, value in (await request.form()).multi_items():
        label = field if field in KNOWN_FIELDS else "a field"
        if not isinstance(value, str):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Form field {label} takes no file.")
        problem = form_problem(field) or form_problem(value)
        if problem:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Form field {label} {problem}.")
