"""Render the Mermaid sources in this folder to the SVGs the documentation shows.

The site shows committed SVGs rather than rendering Mermaid in the reader's
browser: Material for MkDocs would fetch mermaid.js from a CDN at page load,
which fails offline and sends every reader to a third party. Rerun this after
editing a ``.mmd`` file and commit the SVG beside it::

    npm install --prefix /tmp/mermaid mermaid@11
    python docs/diagrams/render.py /tmp/mermaid/node_modules/mermaid/dist/mermaid.min.js

It needs Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from screenshot import HEADLESS, chromium  # noqa: E402 - docs/screenshot.py, beside this folder

PAGE = """<!doctype html><meta charset="utf-8"><body>
<script src="{script}"></script>
<div id="out"></div>
<script>
mermaid.initialize({{startOnLoad: false, theme: "neutral", securityLevel: "strict",
                     sequence: {{useMaxWidth: false}}, fontFamily: "sans-serif"}});
mermaid.render("diagram", {source}).then(
  (result) => {{ document.getElementById("out").textContent = result.svg; }},
  (error) => {{ document.getElementById("out").textContent = "ERROR " + error; }});
</script>
"""


def render(mermaid_js: Path, source: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "render.html"
        page.write_text(
            PAGE.format(script=mermaid_js.resolve().as_uri(), source=json.dumps(source.read_text()))
        )
        dom = subprocess.run(
            [
                chromium(),
                *HEADLESS,
                f"--user-data-dir={tmp}/profile",
                "--allow-file-access-from-files",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    match = re.search(r'<div id="out">(.*?)</div>', dom, re.DOTALL)
    if match is None or not match.group(1).startswith("&lt;svg"):
        raise SystemExit(f"{source.name}: mermaid did not render: {dom[-2000:]}")
    return html.unescape(match.group(1)) + "\n"


def main() -> None:
    mermaid_js = Path(sys.argv[1])
    for source in sorted(HERE.glob("*.mmd")):
        target = source.with_suffix(".svg")
        target.write_text(render(mermaid_js, source))
        print(f"{source.name} -> {target.name}")


if __name__ == "__main__":
    main()
