"""Accounts: registration, credential checks, password changes, (de)activation."""

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from website.models import User
from website.passwords import Hasher
from website.text import has_invisible

PASSWORD_MIN, PASSWORD_MAX = 8, 256
DISPLAY_NAME_MAX = 50
EMAIL_MAX = 254


class RegistrationError(ValueError):
    """A user-facing reason the account could not be created; `field` is the form field to fix."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.field = field


class PasswordChangeError(ValueError):
    """A user-facing reason the password was not changed."""


class WrongPassword(PasswordChangeError):
    """The current password given was wrong (counts as a failed login)."""


def normalise_email(raw: str) -> str:
    try:
        # No DNS look-ups at sign-up; test_environment also admits the reserved .test domain,
        # which demos and the end-to-end suite use.
        return validate_email(raw.strip(), test_environment=True).normalized
    except EmailNotValidError as exc:
        raise RegistrationError(f"That email address is not valid: {exc}") from None


def throttle_key(email: str) -> str:
    """The key per-account throttles count under: the same for every spelling of one address."""
    return email.strip().lower()[: EMAIL_MAX + 1]


def clean_display_name(raw: str) -> str:
    """The name as stored (whitespace collapsed), or a RegistrationError saying what is wrong."""
    name = " ".join(raw.split())
    if not name:
        raise RegistrationError("Please choose a display name.", "display_name")
    if len(name) > DISPLAY_NAME_MAX:
        raise RegistrationError(
            f"Display names are at most {DISPLAY_NAME_MAX} characters.", "display_name"
        )
    if has_invisible(name):
        raise RegistrationError(
            "Display names cannot contain invisible or text-direction characters.",
            "display_name",
        )
    return name


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise RegistrationError(
            f"Passwords are {PASSWORD_MIN} to {PASSWORD_MAX} characters long.", "password"
        )


async def register(
    db: AsyncSession, hasher: Hasher, email: str, display_name: str, password: str
) -> User:
    email = normalise_email(email)
    display_name = clean_display_name(display_name)
    check_password(password)
    user = User(email=email, display_name=display_name, password_hash=await hasher.hash(password))
    try:
        # A savepoint: a clash rolls back only this insert, not the caller's loaded objects.
        async with db.begin_nested():
            db.add(user)
    except IntegrityError:
        raise RegistrationError("An account with this email already exists.") from None
    await db.commit()
    return user


async def find_user(db: AsyncSession, email: str) -> User | None:
    user: User | None = await db.scalar(
        select(User).where(func.lower(User.email) == email.strip().lower())
    )
    return user


async def authenticate(db: AsyncSession, hasher: Hasher, email: str, password: str) -> User | None:
    """The active user with these credentials, or None (in the same time either way)."""
    user = await find_user(db, email)
    valid, new_hash = await hasher.verify(password, user.password_hash if user else None)
    if not valid or user is None or not user.is_active:
        return None
    if new_hash:
        user.password_hash = new_hash
        await db.commit()
    return user


async def change_password(
    db: AsyncSession, hasher: Hasher, user: User, current: str, new: str, again: str
) -> None:
    valid, _ = await hasher.verify(current, user.password_hash)
    if not valid:
        raise WrongPassword("Your current password is not right.")
    if new != again:
        raise PasswordChangeError("The new passwords do not match.")
    try:
        check_password(new)
    except RegistrationError as exc:
        raise PasswordChangeError(str(exc)) from None
    user.password_hash = await hasher.hash(new)
    await db.commit()


async def change_display_name(db: AsyncSession, user: User, raw: str) -> str:
    """Rename the user (open chat sockets keep the old name until they reconnect)."""
    user.display_name = clean_display_name(raw)
    await db.commit()
    return user.display_name


async def set_active(db: AsyncSession, email: str, active: bool) -> User | None:
    """Deactivate or reactivate an account; None if there is no such email."""
    user = await find_user(db, email)
    if user is not None:
        user.is_active = active
        await db.commit()
    return user
