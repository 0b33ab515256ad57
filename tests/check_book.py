"""Check the built HTML book the way a reader sees it: `make check-book` (after `make html`).

Two passes over every page of ``_build/html``:

1. **Static**: the HTML text outside math, code and scripts has no stray ``$`` or TeX delimiters
   (a sign that Markdown turned math into text or text into math).
2. **In a browser**: headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; no
   browser is downloaded) opens each page from a local HTTP server, with every request to another
   host refused (the book must read offline), waits for MathJax, and fails on console errors,
   images that do not load, raw TeX left after typesetting, MathJax errors and captions with too
   little contrast. It does so at two window widths, a desktop's (1280 px) and a phone's (390 px):
   at desktop width a display equation or code block wider than the text column fails (a reader
   would have to scroll sideways); at both widths an equation, table, image or code block that is
   clipped (part of it cannot be seen, not even by scrolling the box it sits in) fails, and so does
   a page that scrolls sideways as a whole, and so does an image drawn out of its own proportions.

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
#: The window sizes every page is checked at: a desktop's, where nothing may scroll sideways, and a
#: phone's, where wide equations and tables may scroll inside their box but nothing may be clipped.
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
#: Pixels of slack for sub-pixel layout.
SLACK_PX = 2
#: An image drawn with a width-to-height ratio more than 2% off its own is squashed or stretched.
MAX_DISTORTION = 0.02
#: WCAG 2 AA: normal text needs a contrast ratio of at least 4.5 against its background. Captions
#: must also be as dark as the body text (within 5%) and of at least normal weight: they are read, not decoration.
MIN_CONTRAST = 4.5
#: A word written twice in a row ("exercise Exercise 1.2" from prose before a reference that
#: already names the exercise); words of three letters or more, so "a a" in a formula's text is not caught.
DOUBLED_WORD = re.compile(r"(?<![\w-])([A-Za-z]{3,})\s+\1(?![\w-])", re.IGNORECASE)


#: Also left out when looking for doubled words: cells of tables and headings run into each other
#: ("neural-ode | ODE-Net", "References" as the title and the heading).
NOT_SENTENCES = {"table", "h1", "h2", "h3", "h4", "h5", "h6", "nav", "header", "footer", "title"}
#: Elements that end a run of text: their text is kept apart from the next element's by a "¶".
BLOCKS = {"p", "li", "div", "dd", "dt", "td", "th", "figcaption", "section", "blockquote", "ul", "ol", "dl"}


class _ProseText(HTMLParser):
    """Collects the text of a page that a reader sees as prose (not math, code or scripts)."""

    def __init__(self, skipped_tags: set[str] = SKIPPED_TAGS) -> None:
        super().__init__(convert_charrefs=True)
        self._skipped_tags = skipped_tags
        self._stack: list[bool] = []  # for each open element: does it (or a parent) hide its text?
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        hidden = tag in self._skipped_tags or bool(classes & SKIPPED_CLASSES)
        if tag in {"br", "img", "hr", "meta", "link", "input", "wbr", "source"}:
            return  # void elements have no end tag
        self._stack.append(hidden or (bool(self._stack) and self._stack[-1]))
        if tag in BLOCKS:
            self.chunks.append("¶")

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()
        if tag in BLOCKS:
            self.chunks.append("¶")

    def handle_data(self, data: str) -> None:
        if not (self._stack and self._stack[-1]):
            self.chunks.append(data)


def prose_text(html: str, skipped_tags: set[str] = SKIPPED_TAGS) -> str:
    """The text of ``html`` a reader sees as prose (not math, code or scripts), whitespace collapsed."""
    parser = _ProseText(skipped_tags)
    parser.feed(html)
    return re.sub(r"(\s*¶\s*)+", " ¶ ", " ".join(" ".join(parser.chunks).split())).strip(" ¶")


def stray_math(html: str) -> list[str]:
    """Snippets of prose text in ``html`` that hold ``$`` or TeX delimiters outside math and code."""
    text = prose_text(html)
    return [text[max(0, m.start() - 40): m.end() + 40] for m in STRAY_MATH.finditer(text)]


def doubled_words(html: str) -> list[str]:
    """Snippets of the sentences of ``html`` where a word follows itself ("exercise Exercise 1.2")."""
    text = prose_text(html, SKIPPED_TAGS | NOT_SENTENCES)
    return [text[max(0, m.start() - 30): m.end() + 30] for m in DOUBLED_WORD.finditer(text)]


def dot_segment_links(html: str) -> list[str]:
    """Links of ``html`` with a ``/./`` segment (a launch button built from ``path_to_book: "."``)."""
    return sorted({m.group(1) for m in re.finditer(r'href="([^"]*?/\./[^"]*)"', html)})


def pages(root: Path) -> list[Path]:
    """The book's content pages (search, genindex and the like have no content to check)."""
    skipped = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(p for p in root.rglob("*.html") if p.name not in skipped and "_static" not in p.parts)


def static_problems(root: Path) -> list[str]:
    problems = []
    for page in pages(root):
        html = page.read_text(encoding="utf-8")
        name = page.relative_to(root)
        problems += [f"{name}: stray math in text: …{snippet}…" for snippet in stray_math(html)]
        problems += [f"{name}: doubled word: …{snippet}…" for snippet in doubled_words(html)]
        problems += [f"{name}: link with a /./ segment: {link}" for link in dot_segment_links(html)]
    return problems


#: Run in the page after MathJax has finished, with ``{desktop: bool, slack: px, minContrast: ratio}``:
#: everything a reader would notice as broken at this window width.
PAGE_CHECKS = r"""
({desktop, slack, minContrast, maxDistortion}) => {
  const problems = [];
  const viewport = document.documentElement.clientWidth;
  // Is (part of) the box `rect` of `el`'s content out of sight, even after scrolling the boxes it sits in?
  const clipped = (el, rect) => {
    let left = rect.left, right = rect.right;
    for (let box = el.parentElement; box; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === 'visible') continue;
      const edge = box.getBoundingClientRect();
      if (overflow === 'auto' || overflow === 'scroll') { left = edge.left; right = edge.right; continue; }
      if (left < edge.left - slack || right > edge.right + slack) return true;  // hidden or clip
    }
    return left < -slack || right > viewport + slack;
  };
  const where = desktop ? 'at desktop width' : 'at phone width';
  const tex = text => text.replace(/\s+/g, ' ').trim().slice(0, 70);
  if (desktop) {
    for (const img of document.querySelectorAll('img')) {
      if (!img.complete || img.naturalWidth === 0) problems.push('image does not load: ' + img.getAttribute('src'));
    }
    if (document.querySelector('.MathJax_Error, merror, mjx-merror')) problems.push('MathJax could not typeset a formula');
  }
  if (document.documentElement.scrollWidth > viewport + slack) {
    problems.push(`the page scrolls sideways ${where} (${document.documentElement.scrollWidth} px in ${viewport} px)`);
  }
  for (const pre of document.querySelectorAll('article pre, main pre')) {
    const line = pre.textContent.split('\n').reduce((a, b) => a.length > b.length ? a : b).slice(0, 80);
    if (desktop && pre.scrollWidth > pre.clientWidth + slack) problems.push('code block wider than the column: ' + line);
    else if (clipped(pre, pre.getBoundingClientRect())) problems.push(`code block clipped ${where}: ` + line);
  }
  // Display equations, from MathJax's own list (which keeps each formula's TeX).
  const items = (window.MathJax && MathJax.startup && MathJax.startup.document) ? Array.from(MathJax.startup.document.math) : [];
  for (const item of items) {
    const root = item.typesetRoot;
    if (!item.display || !root || !root.isConnected || !root.closest('main, article')) continue;
    const math = root.querySelector('mjx-math') || root;
    const rect = math.getBoundingClientRect();
    if (rect.width === 0) continue;  // hidden (a folded solution)
    const block = root.closest('div.math') || root.parentElement;
    const label = block && block.id ? block.id.replace(/^equation-/, '') + ' ' : '';
    const number = block && block.querySelector('.eqno') ? block.querySelector('.eqno').textContent.replace('#', '').trim() + ' ' : '';
    const column = (block || root).clientWidth;
    // The space beside the number, when the number stands on the equation's line (it is drawn over what
    // does not fit, or the equation scrolls in a box too narrow for it).
    const eqno = block && block.querySelector('.eqno');
    const box = eqno ? eqno.getBoundingClientRect() : null;
    const sameLine = box && box.width > 0 && box.bottom > rect.top + 1 && box.top < rect.bottom - 1;
    const beside = sameLine ? column - box.width : column;
    const name = `equation ${number}${label}(${Math.round(rect.width)} px in ${column} px): ${tex(item.math)}`;
    if (desktop && rect.width > column + slack) problems.push('equation wider than the column at desktop width: ' + name);
    else if (desktop && number && rect.width > beside + slack) {
      problems.push(`equation wider than the space beside its number at desktop width (${Math.round(rect.width)} px in ` +
                    `${beside} px): equation ${number}${label}` + tex(item.math));
    } else if (clipped(math, rect)) problems.push(`equation clipped ${where}: ` + name);
  }
  for (const table of document.querySelectorAll('main table, article table')) {
    if (table.getBoundingClientRect().width === 0) continue;
    if (clipped(table, table.getBoundingClientRect())) {
      problems.push(`table clipped ${where}: ` + tex(table.textContent).slice(0, 60));
    }
  }
  for (const img of document.querySelectorAll('main img, article img')) {
    const rect = img.getBoundingClientRect();
    if (rect.width > 0 && clipped(img, rect)) problems.push(`image clipped ${where}: ` + img.getAttribute('src'));
    // Squashed or stretched: the shape drawn differs from the picture's own (an inline height kept while
    // the width shrinks to the column turns circles into ovals).
    if (rect.width > 0 && rect.height > 0 && img.naturalWidth > 0 && img.naturalHeight > 0) {
      const drawn = rect.width / rect.height, natural = img.naturalWidth / img.naturalHeight;
      if (Math.abs(drawn / natural - 1) > maxDistortion) {
        problems.push(`image distorted ${where} (drawn ${Math.round(rect.width)}×${Math.round(rect.height)} px, ` +
                      `its own shape ${img.naturalWidth}×${img.naturalHeight}): ` + (img.getAttribute('alt') || '').slice(0, 60));
      }
    }
  }
  // Captions: their text against the background behind them.
  const rgba = text => (text.match(/[\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const background = el => {
    for (let box = el; box; box = box.parentElement) {
      const colour = rgba(getComputedStyle(box).backgroundColor);
      if (colour.length === 3 || (colour.length === 4 && colour[3] > 0)) return colour;
    }
    return [255, 255, 255];
  };
  const contrast = el => {
    const [fg, bg] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))];
    return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  };
  if (desktop) {
    const paragraph = Array.from(document.querySelectorAll('article p')).find(p => !p.closest('figcaption, .caption, table, .admonition'));
    const floor = Math.max(minContrast, paragraph ? 0.95 * contrast(paragraph) : 0);
    for (const caption of document.querySelectorAll('figcaption, figcaption *, p.caption, .caption-text')) {
      if (caption.closest('.headerlink') || !caption.textContent.trim() || caption.getBoundingClientRect().width === 0) continue;
      const weight = Number(getComputedStyle(caption).fontWeight);
      if (weight < 400) problems.push(`caption text in a light font (weight ${weight}): ` + tex(caption.textContent).slice(0, 60));
      const ratio = contrast(caption);
      if (ratio < floor) {
        problems.push(`caption text with contrast ${ratio.toFixed(1)}, below the body text's (${floor.toFixed(1)}): ` +
                      tex(caption.textContent).slice(0, 60));
      }
    }
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
  }
  return [...new Set(problems)];
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
  // The book's rfy.js sizes equations for a phone once MathJax is done: wait for it where it is loaded.
  const fitting = document.querySelector('script[src*="rfy.js"]');
  return window.__rfyTypeset && (!fitting || window.rfyEquationsFitted === true);
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
            for width, viewport in VIEWPORTS.items():
                desktop = width == "desktop"
                context = browser.new_context(viewport=viewport)
                context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
                for page_path in pages(root):
                    name = str(page_path.relative_to(root))
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("console", lambda msg, errors=errors:
                            errors.append(msg.text) if msg.type == "error" else None)
                    page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                    page.on("requestfailed", lambda req, errors=errors: errors.append(f"request failed: {req.url}"))
                    page.on("response", lambda resp, errors=errors:
                            errors.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
                    page.goto(base + name.replace("\\", "/"), wait_until="load", timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_function(MATHJAX_DONE, timeout=PAGE_TIMEOUT_MS)
                    if desktop:
                        problems += [f"{name}: console error: {error}" for error in errors]
                    settings = {"desktop": desktop, "slack": SLACK_PX, "minContrast": MIN_CONTRAST,
                                "maxDistortion": MAX_DISTORTION}
                    checks = page.evaluate(PAGE_CHECKS, settings)
                    problems += [f"{name}: {problem}" for problem in checks]
                    page.close()
                    print(f"  {name}: checked at {width} width", file=sys.stderr, flush=True)
                context.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def pdf_problems(pdf: Path) -> list[str]:
    """What a reader of the printed book would find broken: no bookmarks (outline), links that lead to the
    local server the book was printed from, and links inside the PDF to a place that is not in it."""
    data = Path(pdf).read_bytes()
    problems = [] if re.search(rb"/Outlines\s+\d+\s+0\s+R", data) else ["no bookmarks (the PDF has no outline)"]
    local = sorted({uri.decode("latin-1") for uri in re.findall(rb"/URI\s*\((http://(?:127\.0\.0\.1|localhost)[^)]*)\)",
                                                                  data)})
    problems += [f"link to the local server the book was printed from: {uri}" for uri in local[:10]]
    if len(local) > 10:
        problems.append(f"... and {len(local) - 10} more links to the local server")
    named = set(re.findall(rb"/Dest\s*/([^\s/\]>]+)", data))
    defined = set(re.findall(rb"\(([^()]*)\)\s*\[\s*\d+\s+0\s+R\s*/XYZ", data)) | set(
        re.findall(rb"/([^\s/\[\]<>()]+)\s*\[\s*\d+\s+0\s+R\s*/XYZ", data))
    missing = sorted(name.decode("latin-1") for name in named - defined)
    problems += [f"link inside the PDF to a place that is not in it: {name}" for name in missing[:10]]
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
