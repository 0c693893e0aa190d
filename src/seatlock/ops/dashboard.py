"""/ops: the live dashboard for admins. The page, its script and its style are static files
that hold no data, so every route here is public: the script signs in on the page and reads
everything from the admin API (bearer token) and the public availability stream."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router

from seatlock.auth.access import PUBLIC

# Shipped inside the package, so a wheel carries them; an installed wheel is unpacked on
# disk, which the static files router needs.
STATIC: Final = Path(str(files("seatlock.ops") / "static"))

# The page keeps an access token: it runs only its own script and style, talks only to its
# own origin, and no other site may frame it.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every visit, so a deploy's new script is never paired with an old page.
    "Cache-Control": "no-cache",
}

_PAGE: Final = (STATIC / "dashboard.html").read_bytes()


@get("/", roles=PUBLIC, media_type=MediaType.HTML, include_in_schema=False)
async def dashboard_page() -> Response[bytes]:
    return Response(_PAGE, media_type=MediaType.HTML, headers=PAGE_HEADERS)


_assets = create_static_files_router(
    "/static",
    directories=[STATIC],
    name="ops-static",
    cache_control=CacheControlHeader(no_cache=True),
    opt={"roles": PUBLIC},
)

dashboard_router = Router("/ops", route_handlers=[dashboard_page, _assets], tags=["ops"])
