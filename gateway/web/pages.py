"""HTML pages served by the gateway: Jinja2 shells whose forms and tables are driven by small
ES modules (gateway/web/static/js) through the browser SDK (sdk/js). The pages never see a
token: the gateway's cookies authenticate the calls they make to /v1."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from deelrx_kit.plans import PLANS, REQUESTS_PER_MINUTE

HERE = Path(__file__).resolve().parent
SWAGGER_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

# path -> (template, title, whether the page needs a signed-in person)
PAGES: dict[str, tuple[str, str, bool]] = {
    "/signup": ("signup.html", "Create your account", False),
    "/verify-email": ("verify_email.html", "Verify your email", False),
    "/login": ("login.html", "Log in", False),
    "/forgot-password": ("forgot_password.html", "Forgot your password", False),
    "/reset-password": ("reset_password.html", "Choose a new password", False),
    "/accept-invite": ("accept_invite.html", "Join a team", False),
    "/account": ("account.html", "Account security", True),
    "/team": ("team.html", "Team", True),
    "/roles": ("roles.html", "Role permissions", True),
    "/customers": ("customers.html", "Customers", True),
    "/audit": ("audit.html", "Audit log and alerts", True),
    "/billing": ("billing.html", "Billing", True),
}
NAVIGATION = (
    ("/account", "Security"),
    ("/team", "Team"),
    ("/roles", "Roles"),
    ("/customers", "Customers"),
    ("/audit", "Audit"),
    ("/billing", "Billing"),
)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
# The billing page lists the plans and their limits from their one definition.
templates.globals["plans"] = [(name, REQUESTS_PER_MINUTE[name]) for name in PLANS]


def sdk_js_dir() -> Path:
    """`sdk/js` of the source tree (editable installs, the image's /app), else next to the working dir."""
    for candidate in (HERE.parents[1] / "sdk" / "js", Path.cwd() / "sdk" / "js"):
        if (candidate / "deelrx.js").is_file():
            return candidate
    raise RuntimeError("sdk/js/deelrx.js not found: the gateway serves it at /sdk/js/deelrx.js")


def render(template: str, **context: object) -> HTMLResponse:
    html = templates.get_template(template).render(navigation=NAVIGATION, **context)
    # Pages hold no personal data (the scripts fetch it), but they must not be framed or sniffed
    # (gateway/web/headers.py) and are cheap to re-render.
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/account", status_code=303)


def _page_route(path: str, template: str, title: str, signed_in: bool) -> None:
    page = template.removesuffix(".html")

    async def show(request: Request) -> HTMLResponse:
        return render(template, title=title, page=page, signed_in=signed_in, path=path)

    router.add_api_route(path, show, methods=["GET"], name=f"page_{page}")


for _path, (_template, _title, _signed_in) in PAGES.items():
    _page_route(_path, _template, _title, _signed_in)


@router.get("/docs")
async def api_docs() -> HTMLResponse:
    """Swagger UI from the suite's own files (fastapi-offline's pinned bundle), under the same CSP."""
    return render("docs.html", title="DeelRx authentication API")


@router.get("/sdk/js/{name}")
async def browser_sdk(name: str) -> FileResponse:
    path = sdk_js_dir() / name
    if name != "deelrx.js" or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Adds the pages, /docs, /sdk/js and the static files to the public app."""
    app.include_router(router)
    app.mount("/static/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
