"""Build the documentation site and screenshot it in headless Chromium.

    python docs/screenshot.py [OUTPUT_DIR]      (default: build/docs-screenshots)

Builds with ``mkdocs build --strict`` into a temporary folder, serves it on
127.0.0.1, and saves PNGs of the home page, a platform guide and the page
with the restart timeline, so a rendering break is seen (look at them). It
also fails when a page would fetch anything from another host (web fonts,
mermaid.js from a CDN): the site must render offline.

Needs the ``docs`` extra and Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).parents[1]
PAGES = {
    "home": "",
    "guide-telegram": "platforms/telegram/",
    "lifecycle": "how-it-works/lifecycle/",
}
#: Files the pages must show, each checked to be in the built site.
DIAGRAMS = ["diagrams/restart-timeline.svg", "diagrams/lease-claim.svg"]
_EXTERNAL = re.compile(r'<(?:script|link|img)\b[^>]*(?:src|href)="(?:https?:)?//', re.IGNORECASE)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no Chromium found (Debian: apt-get install chromium)")


def build(site: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
    )
    for diagram in DIAGRAMS:
        if not (site / diagram).is_file():
            raise SystemExit(f"the built site lacks {diagram}")
    for page in site.rglob("*.html"):
        found = _EXTERNAL.search(page.read_text(encoding="utf-8"))
        if found:
            raise SystemExit(f"{page.relative_to(site)} loads from another host: {found.group()}")


#: Headless, as root, and without the background requests a closed network refuses.
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def screenshot(browser: str, url: str, png: Path, profile: Path) -> None:
    subprocess.run(
        [
            browser,
            *HEADLESS,
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            "--virtual-time-budget=5000",
            f"--screenshot={png}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # A blank page compresses to a few kB; a rendered one is far larger.
    if png.stat().st_size < 20_000:
        raise SystemExit(f"{png} is {png.stat().st_size} bytes: the page looks blank")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "docs-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="restart-guard-docs-") as tmp:
        site = Path(tmp) / "site"
        build(site)
        handler = functools.partial(_QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for name, path in PAGES.items():
                png = out / f"{name}.png"
                url = f"http://127.0.0.1:{server.server_port}/{path}"
                screenshot(browser, url, png, Path(tmp) / f"profile-{name}")
                print(f"{url} -> {png} ({png.stat().st_size} bytes)")
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
