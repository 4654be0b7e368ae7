"""The interactive API page at /api/v1/docs: Swagger UI from Postroom's own
static files (vendored, pinned: workspace/static/vendor/VENDORED.md), so it
works without internet access, under a Content-Security-Policy that admits
scripts and styles from Postroom only.

Serves one HTML page; the OpenAPI description itself is FastAPI's
(/api/v1/openapi.json). No endpoint logic here.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from postroom.web.deps import PUBLIC

SWAGGER_UI = "5.35.0"
VENDOR = "/static/workspace/vendor"

router = APIRouter(include_in_schema=False)

# Swagger UI sets element styles from script (CSSOM), which style-src does not
# govern; it loads nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Postroom API</title>
  <link rel="icon" href="/favicon.ico">
  <link rel="stylesheet" href="{VENDOR}/swagger-ui-{SWAGGER_UI}.css">
  <script src="{VENDOR}/swagger-ui-bundle-{SWAGGER_UI}.js" defer></script>
  <script src="/static/workspace/api-docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/api/v1/openapi.json"></div>
</body>
</html>
"""


@router.get("/api/v1/docs", openapi_extra=PUBLIC)
def docs_page() -> HTMLResponse:
    return HTMLResponse(
        PAGE,
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
