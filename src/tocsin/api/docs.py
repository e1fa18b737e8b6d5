"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc).

FastAPI's own pages load their scripts and styles from a CDN, so on a machine without internet
access they are blank. These serve the same pages with the viewers' files vendored in the
package (`web/vendor/`, see its README), under `/static`, so nothing leaves the server.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
VENDOR = "/static/vendor"

SWAGGER_JS = f"{VENDOR}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui/swagger-ui.css"
FAVICON = f"{VENDOR}/swagger-ui/favicon-32x32.png"
REDOC_JS = f"{VENDOR}/redoc/redoc.standalone.js"

#: The pages may load nothing from anywhere but this server. The vendored viewers still name a
#: few outside URLs of their own (ReDoc shows its maker's logo from cdn.redoc.ly): the browser
#: refuses those before any request leaves, so a page viewed offline, or behind a firewall,
#: behaves as one viewed online, and no viewing of the docs is reported to a third party.
#: Inline script and style: FastAPI's page starts Swagger UI inline, and both viewers style
#: their elements inline; ReDoc runs its search in a worker made from a blob.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
])


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install(app: FastAPI) -> None:
    """Add the pages to an app created with `docs_url=None, redoc_url=None`."""

    def prefix(request: Request) -> str:
        # Behind a proxy that mounts the app under a path, every URL in the page needs it too.
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return _same_origin_only(get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_js_url=root + SWAGGER_JS,
            swagger_css_url=root + SWAGGER_CSS,
            swagger_favicon_url=root + FAVICON,
            # No online validator: it would send the spec to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        ))

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return _same_origin_only(get_redoc_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - ReDoc",
            redoc_js_url=root + REDOC_JS,
            redoc_favicon_url=root + FAVICON,
            with_google_fonts=False,  # fonts.googleapis.com is another origin
        ))
