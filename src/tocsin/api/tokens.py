"""POST /v1/tokens: a publisher mints a user's token."""

from __future__ import annotations

from fastapi import APIRouter

from tocsin.api.deps import PublisherDep, ServicesDep
from tocsin.api.openapi import AUTHENTICATED, WITH_BODY, errors
from tocsin.api.schemas import TokenBody, TokenResponse
from tocsin.domain.errors import InvalidInput

router = APIRouter(tags=["publisher"])


@router.post("/v1/tokens", response_model=TokenResponse, summary="Mint a user token",
             responses=errors(*AUTHENTICATED, *WITH_BODY))
async def mint_token(body: TokenBody, svc: ServicesDep, who: PublisherDep) -> TokenResponse:
    limit = svc.settings.max_token_ttl_seconds
    if body.ttl_seconds > limit:
        raise InvalidInput(f"ttl_seconds is at most {limit}",
                           details={"field": "ttl_seconds", "max": limit})
    token, expires_at = svc.tokens.mint(body.user_id, body.ttl_seconds)
    return TokenResponse(token=token, expires_at=expires_at)
