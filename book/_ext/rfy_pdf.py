"""The whole book as one PDF, printed by the system's Chromium: ``make pdf`` (after ``make html``).

Jupyter Book's own PDF builders need LaTeX or download a browser; this uses the headless Chromium
that ``tests/check_book.py`` drives already (Debian's ``/usr/bin/chromium``, through Playwright).
It opens one chapter page of the built HTML book, replaces its article with the articles of every
page in the order of ``_toc.yml`` (each from a new sheet), lets MathJax typeset the lot, scales down
any display equation wider than the printed column, and prints it to A4 with page numbers. Every
page of the book sits one folder deep (``book/``, ``notebooks/``), so the images' relative addresses
hold in the combined page unchanged.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from check_book import MATHJAX_DONE, PAGE_TIMEOUT_MS, serve  # noqa: E402  (a script beside the tests)

#: Put every page's article into the open page, then typeset the whole of it again.
COMBINE = r"""
async (pages) => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main article');
  const parts = [];
  for (const [index, url] of pages.entries()) {
    const html = await (await fetch(url)).text();
    const other = new DOMParser().parseFromString(html, 'text/html');
    const body = other.querySelector('article.bd-article') || other.querySelector('main article');
    if (!body) throw new Error('no article in ' + url);
    const part = document.createElement('div');
    if (index > 0) part.className = 'rfy-pdf-page-break';
    part.append(...Array.from(body.childNodes).map(node => document.importNode(node, true)));
    parts.push(part);
  }
  MathJax.typesetClear([article]);
  article.replaceChildren(...parts);
  const style = document.createElement('style');
  // Each page of the book starts a new sheet. The theme prints a page's title once, above the
  // article, and hides its first heading; here every chapter keeps its own heading.
  style.textContent = '@media print { .rfy-pdf-page-break { break-before: page; }' +
                      ' #jb-print-docs-body > h1, #jb-print-toc { display: none !important; }' +
                      ' .bd-article h1 { display: block !important; } }';
  document.head.append(style);
  await MathJax.typesetPromise([article]);
  return parts.length;
}
"""
#: In print a display equation wider than the column is scaled down to fit it (on screen it would
#: scroll; paper cannot). Returns how many were scaled.
FIT_EQUATIONS = r"""
() => {
  let scaled = 0;
  for (const item of MathJax.startup.document.math) {
    const root = item.typesetRoot;
    if (!item.display || !root || !root.isConnected) continue;
    const math = root.querySelector('mjx-math') || root;
    const block = root.closest('div.math') || root.parentElement;
    const number = block.querySelector('.eqno');
    const column = block.clientWidth - (number ? number.getBoundingClientRect().width + 8 : 0);
    if (math.getBoundingClientRect().width <= column) continue;
    for (let pass = 0; pass < 4 && math.getBoundingClientRect().width > column; pass++) {
      const size = parseFloat(getComputedStyle(root).fontSize);
      root.style.fontSize = `${(0.98 * size * column / math.getBoundingClientRect().width).toFixed(2)}px`;
    }
    scaled += 1;
  }
  return scaled;
}
"""
#: A4's width less the side margins below, in CSS pixels (96 per inch): the screen lays the page
#: out as wide as the paper will be.
PRINT_WIDTH_PX = round((210 - 2 * 12) / 25.4 * 96)
FOOTER = ('<div style="font-size:8px;width:100%;text-align:center;color:#444">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')


def toc_pages(toc_path: Path) -> list[str]:
    """The book's pages in reading order, as paths of the built HTML (``book/intro.html``, …)."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]] + [chapter["file"] for part in toc.get("parts", []) for chapter in part["chapters"]]
    return [f"{name}.html" for name in files]


def build_pdf(html_root: Path, output: Path, chromium: str, pages: list[str]) -> int:
    """Print ``pages`` of the built book at ``html_root`` into one PDF at ``output``; return the page count."""
    from playwright.sync_api import sync_playwright

    missing = [page for page in pages if not (html_root / page).exists()]
    if missing:
        raise FileNotFoundError(f"pages not in {html_root} (run `make html` first): {missing}")
    depths = {len(Path(page).parts) for page in pages}
    if depths != {2}:
        raise ValueError(f"every page must sit one folder deep for its images to resolve, got {sorted(pages)}")
    # The page the articles are put into must load MathJax: Sphinx adds it only to pages with math.
    shell = next((page for page in pages if "mathjax" in (html_root / page).read_text(encoding="utf-8").lower()), None)
    if shell is None:
        raise ValueError("none of the pages has math, so none loads MathJax to typeset the combined page")
    server, base = serve(html_root)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
            page.goto(base + shell, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(MATHJAX_DONE, timeout=PAGE_TIMEOUT_MS)
            count = page.evaluate(COMBINE, [base + name for name in pages])
            page.wait_for_load_state("networkidle")
            page.emulate_media(media="print")
            scaled = page.evaluate(FIT_EQUATIONS)
            if scaled:
                print(f"  {scaled} display equation(s) scaled down to fit the printed column", file=sys.stderr)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(path=str(output), format="A4", print_background=True, display_header_footer=True,
                     header_template="<div></div>", footer_template=FOOTER,
                     margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
            browser.close()
    finally:
        server.shutdown()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--output", default=None, help="the PDF (default: <root>/rfy-book.pdf)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser that prints")
    parser.add_argument("--pages", nargs="+", default=None,
                        help="only these pages of the built book, e.g. notebooks/01_neural_odes.html (default: all, "
                             "in the order of _toc.yml)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    output = Path(args.output) if args.output else root / "rfy-book.pdf"
    if not Path(args.chromium).exists():
        print(f"error: no browser at {args.chromium}; install Debian's chromium or pass --chromium", file=sys.stderr)
        return 2
    start = time.perf_counter()
    count = build_pdf(root, output, args.chromium, args.pages or toc_pages(ROOT / "_toc.yml"))
    print(f"{output}: {count} pages of the book, {output.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
