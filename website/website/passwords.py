"""Password hashing with argon2id (pwdlib's recommended parameters)."""

from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()
# Verified against when the email is unknown, so a miss costs as much time as a hit.
_DUMMY_HASH = _hasher.hash("parley-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Return (valid, new_hash); new_hash is set when the stored hash needs an upgrade."""
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False, None
    return _hasher.verify_and_update(password, password_hash)
