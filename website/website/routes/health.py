"""Liveness, readiness and the public keys chat tokens are verified with."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from website.deps import Db, Issuer

# Probes and keys only (all GET): no session lookup, so a plain router.
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
async def jwks(issuer: Issuer) -> Response:
    return JSONResponse(issuer.jwks(), headers={"Cache-Control": "public, max-age=300"})
