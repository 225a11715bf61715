"""Liveness, readiness and the public keys chat tokens are verified with."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from website.deps import Db
from website.tokens import get_issuer

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: Db) -> Response:
    try:
        await db.execute(text("SELECT 1"))
    except Exception:
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/.well-known/jwks.json")
async def jwks() -> Response:
    return JSONResponse(get_issuer().jwks(), headers={"Cache-Control": "public, max-age=300"})
