"""`python -m website.admin deactivate|reactivate EMAIL`: an operator's switch for an account.

Deactivating ends every session of the user and tells the chat to close all their sockets
(user_revoked without sid: 4401); the account can no longer log in. Reactivating lets it log
in again (nothing else is restored). Exit status: 0 done, 1 no such account, 2 bad usage.
"""

import argparse
import asyncio
import sys

from website.chat_control import ChatControl, bus_client
from website.config import Settings
from website.db import create_engine, create_sessionmaker
from website.logging import configure_logging, get_logger
from website.sessions import delete_user_sessions
from website.tokens import TokenIssuer
from website.users import set_active

log = get_logger("website.admin")


async def run(settings: Settings, action: str, email: str) -> int:
    active = action == "reactivate"
    issuer = TokenIssuer.from_pem_file(
        settings.jwt_signing_key_file, settings.chat_token_ttl_seconds
    )
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            user = await set_active(db, email, active)
            if user is None:
                print(f"no account with the email {email!r}", file=sys.stderr)
                return 1
            ended = 0 if active else await delete_user_sessions(db, user.id)
        if not active:
            async with bus_client(settings) as bus:
                await ChatControl(bus, issuer).user_revoked(user.id)
        log.info(f"user {action}d", user_id=str(user.id), sessions_ended=ended)
        print(f"{action}d {user.id}" + ("" if active else f"; {ended} session(s) ended"))
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m website.admin", description=__doc__)
    parser.add_argument("action", choices=["deactivate", "reactivate"])
    parser.add_argument("email")
    args = parser.parse_args(argv)
    configure_logging(service="website-admin")
    return asyncio.run(run(Settings(), args.action, args.email))


if __name__ == "__main__":
    sys.exit(main())
