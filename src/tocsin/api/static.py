"""/static: the widget (tocsin.js) and the docs pages' files, readable from any origin."""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class PublicStaticFiles(StaticFiles):
    """Static files with `Access-Control-Allow-Origin: *`.

    A page on another site loads the bell with `<script type="module" src=".../tocsin.js">`,
    and browsers fetch module scripts in CORS mode: without this header the script itself is
    refused, so the widget cannot even say that the API refuses the page's origin. These files
    are public and carry no credentials; the API keeps to TOCSIN_ALLOWED_ORIGINS."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response
