"""Serving the dashboard: the page at ``/``, its files under ``/dashboard/``.

The page's third-party files (Leaflet, Chart.js) are not in git: ``scripts/build-dashboard`` installs them
from the npm lockfile into ``static/vendor/``. A hub started without them answers ``/`` with a page
that says so and how to fix it, rather than a map that silently fails to draw.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_FILES = (
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/chart.js/chart.umd.min.js",
)
"""What the page cannot run without; checked on every request to ``/`` (cheap, and a rebuild
while the hub runs is picked up)."""

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lastmile dashboard: not built</title>
<style>body{{font:1.1rem/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;
color:#111;background:#fff}}code{{background:#eee;padding:.1rem .3rem}}</style></head>
<body><main><h1>The dashboard's front-end files were not built</h1>
<p>This hub cannot find {missing} under <code>{where}</code>.</p>
<p>Run <code>scripts/build-dashboard</code> (or <code>scripts/setup</code>) from the project's root:
it installs them from the npm registry as <code>package-lock.json</code> pins them.
The API itself works: see <a href="/docs">/docs</a>.</p></main></body></html>
"""


def missing_vendor_files(static_dir: Path = STATIC_DIR) -> list[str]:
    return [name for name in VENDOR_FILES if not (static_dir / name).is_file()]


@dataclass(frozen=True, slots=True)
class MapConfig:
    """What the page's map needs from the hub's settings."""

    tile_url: str | None = None
    tile_attribution: str = ""
    locker_sites: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def content_security_policy(map_config: MapConfig) -> str:
    """Only our own scripts, styles and API; images also from the tile server, if one is set.

    A device-supplied string that somehow reached the page as markup still could not run.
    """
    images = ["'self'", "data:"]
    if map_config.tile_url and "://" in map_config.tile_url:
        scheme, rest = map_config.tile_url.split("://", 1)
        host = rest.split("/", 1)[0]
        # Leaflet's {s} subdomain placeholder becomes a wildcard host.
        images.append(f"{scheme}://{host.replace('{s}', '*')}")
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(images)}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


def render_index(*, map_config: MapConfig, static_dir: Path) -> str:
    """The page with the map settings filled in (attribute-escaped JSON, no script injection)."""
    config = json.dumps(
        {
            "tileUrl": map_config.tile_url,
            "tileAttribution": map_config.tile_attribution,
            "lockerSites": {k: list(v) for k, v in map_config.locker_sites.items()},
        }
    )
    page = (static_dir / "index.html").read_text(encoding="utf-8")
    return page.replace("__LASTMILE_CONFIG__", html.escape(config, quote=True))


def mount_dashboard(
    app: FastAPI,
    *,
    map_config: MapConfig,
    static_dir: Path = STATIC_DIR,
) -> None:
    """Serve the page at ``/`` and its files at ``/dashboard/``; neither needs a key (the data
    behind them does)."""

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        missing = missing_vendor_files(static_dir)
        if missing:
            body = _MISSING.format(
                missing=", ".join(f"<code>{html.escape(m)}</code>" for m in missing),
                where=html.escape(str(static_dir)),
            )
            return HTMLResponse(body, status_code=503)
        page = render_index(map_config=map_config, static_dir=static_dir)
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": content_security_policy(map_config),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.mount("/dashboard", StaticFiles(directory=static_dir), name="dashboard")
