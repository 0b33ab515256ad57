"""Check the built HTML book the way a reader sees it: `make check-book` (after `make html`).

Two passes over every page of ``_build/html``:

1. **Static**: the HTML text outside math, code and scripts has no stray ``$`` or TeX delimiters
   (a sign that Markdown turned math into text or text into math).
2. **In a browser**: headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; no
   browser is downloaded) opens each page from a local HTTP server, with every request to another
   host refused (the book must read offline), waits for MathJax, and fails on console errors,
   images that do not load, raw TeX left after typesetting, MathJax errors, and code blocks wider
   than the text column.

Exit status 0 when every page passes; otherwise each problem is printed as ``page: problem``.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

#: Elements whose text is not prose: math is typeset from it, code is shown verbatim.
SKIPPED_TAGS = {"script", "style", "pre", "code", "kbd", "samp", "textarea", "svg", "math"}
SKIPPED_CLASSES = {"math", "highlight", "MathJax", "MathJax_Preview", "MathJax_Display", "headerlink"}
STRAY_MATH = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\(?:frac|mathcal|mathbb|sum|left|right)\b")
VIEWPORT = {"width": 1280, "height": 900}


class _ProseText(HTMLParser):
    """Collects the text of a page that a reader sees as prose (not math, code or scripts)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._stack: list[bool] = []  # for each open element: does it (or a parent) hide its text?
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        hidden = tag in SKIPPED_TAGS or bool(classes & SKIPPED_CLASSES)
        if tag in {"br", "img", "hr", "meta", "link", "input", "wbr", "source"}:
            return  # void elements have no end tag
        self._stack.append(hidden or (bool(self._stack) and self._stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self._stack and self._stack[-1]):
            self.chunks.append(data)


def stray_math(html: str) -> list[str]:
    """Snippets of prose text in ``html`` that hold ``$`` or TeX delimiters outside math and code."""
    parser = _ProseText()
    parser.feed(html)
    text = " ".join(" ".join(parser.chunks).split())
    return [text[max(0, m.start() - 40): m.end() + 40] for m in STRAY_MATH.finditer(text)]


def pages(root: Path) -> list[Path]:
    """The book's content pages (search, genindex and the like have no content to check)."""
    skipped = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(p for p in root.rglob("*.html") if p.name not in skipped and "_static" not in p.parts)


def static_problems(root: Path) -> list[str]:
    return [f"{page.relative_to(root)}: stray math in text: …{snippet}…"
            for page in pages(root) for snippet in stray_math(page.read_text(encoding="utf-8"))]


#: Run in the page after MathJax has finished: everything a reader would notice as broken.
PAGE_CHECKS = r"""
() => {
  const problems = [];
  for (const img of document.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) problems.push('image does not load: ' + img.getAttribute('src'));
  }
  for (const pre of document.querySelectorAll('article pre, main pre')) {
    if (pre.scrollWidth > pre.clientWidth + 2) problems.push('code block wider than the column: ' +
        pre.textContent.split('\n').reduce((a, b) => a.length > b.length ? a : b).slice(0, 80));
  }
  if (document.querySelector('.MathJax_Error, merror, mjx-merror')) problems.push('MathJax could not typeset a formula');
  const root = document.querySelector('main') || document.body;
  if (!root) return problems;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const skip = el => el.closest('pre, code, script, style, mjx-container, mjx-assistive-mml, .headerlink, nav');
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || skip(node.parentElement)) continue;
    const el = node.parentElement;
    if (el.closest('.math')) { if (/\\\(|\\\[|\\[a-zA-Z]+/.test(node.textContent)) problems.push('raw TeX left after MathJax: ' + node.textContent.trim().slice(0, 80)); continue; }
    if (/\$\$|\\\(|\\\[/.test(node.textContent)) problems.push('raw TeX in text: ' + node.textContent.trim().slice(0, 80));
  }
  return problems;
}
"""

#: True once MathJax 3 has typeset the page (or when the page loads no MathJax).
MATHJAX_DONE = """
() => {
  if (!document.querySelector('script[src*="mathjax"]')) return true;
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return false;
  if (window.__rfyTypeset === undefined) {
    window.__rfyTypeset = false;
    MathJax.startup.promise.then(() => { window.__rfyTypeset = true; });
  }
  return window.__rfyTypeset;
}
"""
PAGE_TIMEOUT_MS = 120_000


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on a free port of the loopback address; return the server and its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def browser_problems(root: Path, chromium: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    server, base = serve(root)
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            context = browser.new_context(viewport=VIEWPORT)
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
            for page_path in pages(root):
                name = str(page_path.relative_to(root))
                page = context.new_page()
                errors: list[str] = []
                page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.on("requestfailed", lambda req, errors=errors: errors.append(f"request failed: {req.url}"))
                page.on("response", lambda resp, errors=errors:
                        errors.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
                page.goto(base + name.replace("\\", "/"), wait_until="load", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_function(MATHJAX_DONE, timeout=PAGE_TIMEOUT_MS)
                problems += [f"{name}: console error: {error}" for error in errors]
                problems += [f"{name}: {problem}" for problem in page.evaluate(PAGE_CHECKS)]
                page.close()
                print(f"  {name}: checked", file=sys.stderr, flush=True)
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive")
    parser.add_argument("--static-only", action="store_true", help="skip the browser pass")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "index.html").exists():
        print(f"error: {root} holds no built book; run `make html` first", file=sys.stderr)
        return 2
    problems = static_problems(root)
    if not args.static_only:
        if not Path(args.chromium).exists():
            print(f"error: no browser at {args.chromium}; install Debian's chromium "
                  "(apt-get install chromium) or pass --chromium", file=sys.stderr)
            return 2
        problems += browser_problems(root, args.chromium)
    for problem in problems:
        print(problem)
    count = len(pages(root))
    print(f"checked {count} pages: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
