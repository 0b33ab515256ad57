"""Page fixes for the built book.

sphinx-thebe and sphinx-togglebutton (pulled in by Jupyter Book 1) end up with their inline
configuration scripts twice in every page's head, so browsers log "Identifier 'THEBE_JS_URL' has
already been declared". Once the build is done, this keeps the first of identical script lines.
"""
from __future__ import annotations

from pathlib import Path


def drop_repeated_scripts(html: str) -> str:
    """``html`` with every repeated, identical ``<script>…</script>`` line of the head removed."""
    head, separator, body = html.partition("</head>")
    seen: set[str] = set()
    kept = []
    for line in head.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("<script") and stripped.endswith("</script>"):
            if stripped in seen:
                continue
            seen.add(stripped)
        kept.append(line)
    return "".join(kept) + separator + body


def clean_pages(app, exception) -> None:
    """After an HTML build, rewrite each page without its repeated scripts."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        cleaned = drop_repeated_scripts(text)
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")


def setup(app):
    app.connect("build-finished", clean_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
