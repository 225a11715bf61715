"""Accounts: registration and credential checks."""

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from website.models import User
from website.passwords import hash_password, verify_password

PASSWORD_MIN, PASSWORD_MAX = 8, 256
DISPLAY_NAME_MAX = 50


class RegistrationError(ValueError):
    """A user-facing reason the account could not be created."""


def normalise_email(raw: str) -> str:
    try:
        # No DNS look-ups at sign-up; test_environment also admits the reserved .test domain,
        # which demos and the end-to-end suite use.
        return validate_email(raw.strip(), test_environment=True).normalized
    except EmailNotValidError as exc:
        raise RegistrationError(f"That email address is not valid: {exc}") from None


async def register(db: AsyncSession, email: str, display_name: str, password: str) -> User:
    email = normalise_email(email)
    display_name = " ".join(display_name.split())
    if not display_name:
        raise RegistrationError("Please choose a display name.")
    if len(display_name) > DISPLAY_NAME_MAX:
        raise RegistrationError(f"Display names are at most {DISPLAY_NAME_MAX} characters.")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise RegistrationError(f"Passwords are {PASSWORD_MIN} to {PASSWORD_MAX} characters long.")
    user = User(email=email, display_name=display_name, password_hash=hash_password(password))
    try:
        # A savepoint: a clash rolls back only this insert, not the caller's loaded objects.
        async with db.begin_nested():
            db.add(user)
    except IntegrityError:
        raise RegistrationError("An account with this email already exists.") from None
    await db.commit()
    return user


async def authenticate(db: AsyncSession, email: str, password: str) -> User | None:
    """The active user with these credentials, or None (in the same time either way)."""
    user = await db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    valid, new_hash = verify_password(password, user.password_hash if user else None)
    if not valid or user is None or not user.is_active:
        return None
    if new_hash:
        user.password_hash = new_hash
        await db.commit()
    return user
