"""The whole book as one PDF, printed by the system's Chromium: ``make pdf`` (after ``make html``).

Jupyter Book's own PDF builders need LaTeX or download a browser; this uses the headless Chromium
that ``tests/check_book.py`` drives already (Debian's ``/usr/bin/chromium``, through Playwright).
It opens one chapter page of the built HTML book, replaces its article with a title sheet, a contents
sheet and the articles of every page in the order of ``_toc.yml`` (each from a new sheet), lets MathJax
typeset the lot, scales down any display equation wider than the printed column, and prints it to A4
with page numbers and bookmarks (the PDF's outline, from the headings). Links between pages of the book
(citations, cross-references) become links inside the PDF. It prints twice: the first print tells on
which page each chapter starts (``pdftotext``, from Debian's poppler-utils), for the contents. Every
page of the book sits one folder deep (``book/``, ``notebooks/``), so the images' relative addresses
hold in the combined page unchanged.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from check_book import MATHJAX_DONE, PAGE_TIMEOUT_MS, pdf_problems, serve  # noqa: E402  (a script beside the tests)

#: Put a title sheet, a contents sheet and every page's article into the open page, then typeset the whole of it
#: again. Ids are prefixed with their page's key, and every link to a page of the book (a citation, a
#: cross-reference) becomes a link inside the PDF; a link to anything else of the local server is unlinked,
#: since the printed book cannot reach it.
COMBINE = r"""
async ({pages, title, subtitle, built}) => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main article');
  const key = url => new URL(url, document.baseURI).pathname.replace(/^\//, '').replace(/[^A-Za-z0-9]+/g, '-');
  const keys = new Set(pages.map(key));
  const parts = [];
  const cover = document.createElement('div');
  cover.className = 'rfy-pdf-cover';
  cover.innerHTML = `<h1 class="rfy-pdf-title"></h1><p class="rfy-pdf-subtitle"></p><p class="rfy-pdf-built"></p>`;
  cover.querySelector('h1').textContent = title;
  cover.querySelector('.rfy-pdf-subtitle').textContent = subtitle;
  cover.querySelector('.rfy-pdf-built').textContent = built;
  const contents = document.createElement('nav');
  contents.className = 'rfy-pdf-contents rfy-pdf-page-break';
  contents.innerHTML = '<h2>Contents</h2><ol></ol>';
  parts.push(cover, contents);
  for (const url of pages) {
    const html = await (await fetch(url)).text();
    const other = new DOMParser().parseFromString(html, 'text/html');
    const body = other.querySelector('article.bd-article') || other.querySelector('main article');
    if (!body) throw new Error('no article in ' + url);
    const part = document.createElement('section');
    part.className = 'rfy-pdf-page-break rfy-pdf-part';
    part.id = key(url);
    const marker = document.createElement('span');  // found in the printed text to number the contents
    marker.className = 'rfy-pdf-marker';
    marker.setAttribute('aria-hidden', 'true');
    marker.textContent = 'rfy-pdf-part-' + parts.length;
    part.append(marker, ...Array.from(body.childNodes).map(node => document.importNode(node, true)));
    for (const element of part.querySelectorAll('[id]')) element.id = part.id + '--' + element.id;
    for (const link of part.querySelectorAll('a[href]')) {
      const target = new URL(link.getAttribute('href'), url);
      if (target.origin !== location.origin) continue;
      const page = key(target.pathname);
      if (keys.has(page)) link.setAttribute('href', '#' + page + (target.hash ? '--' + target.hash.slice(1) : ''));
      else link.removeAttribute('href');
    }
    const heading = part.querySelector('h1');
    const entry = document.createElement('li');
    entry.innerHTML = '<a></a><span class="rfy-pdf-page-number"></span>';
    entry.querySelector('a').href = '#' + part.id;
    entry.querySelector('a').textContent = heading ? heading.textContent.replace(/[#¶]/g, '').trim() : url;
    contents.querySelector('ol').append(entry);
    parts.push(part);
  }
  MathJax.typesetClear([article]);
  article.replaceChildren(...parts);
  const style = document.createElement('style');
  // Each page of the book starts a new sheet. The theme prints a page's title once, above the
  // article, and hides its first heading; here every chapter keeps its own heading. Nothing that only
  // works on a screen is printed (the "Show code cell source" toggles, the headings' link signs).
  style.textContent = `@media print {
    .rfy-pdf-page-break { break-before: page; }
    #jb-print-docs-body > h1, #jb-print-toc { display: none !important; }
    .bd-article h1 { display: block !important; }
    details.hide > summary, a.headerlink, .copybtn { display: none !important; }
    figure, tr, .rfy-pdf-contents li { break-inside: avoid; }
    figcaption { break-before: avoid; }
    h1, h2, h3 { break-after: avoid; }
    .rfy-pdf-cover { text-align: center; padding-top: 35vh; }
    .rfy-pdf-title { font-size: 2.6em; margin-bottom: 0.4em; }
    .rfy-pdf-subtitle { font-size: 1.2em; } .rfy-pdf-built { color: #555; margin-top: 3em; }
    .rfy-pdf-contents ol { list-style: none; padding: 0; }
    .rfy-pdf-contents li { display: flex; gap: 0.5em; margin: 0.45em 0; }
    .rfy-pdf-contents li a { flex: 1; border-bottom: 1px dotted #999; text-decoration: none; }
    .rfy-pdf-marker { font-size: 1px; color: #fff; position: absolute; }
  }`;
  document.head.append(style);
  await MathJax.typesetPromise([article]);
  return pages.length;
}
"""
#: Write the page where each part starts beside its entry in the contents.
NUMBER_CONTENTS = r"""
(numbers) => {
  const entries = document.querySelectorAll('.rfy-pdf-contents .rfy-pdf-page-number');
  entries.forEach((entry, index) => { entry.textContent = String(numbers[index]); });
  document.querySelectorAll('.rfy-pdf-marker').forEach(marker => marker.remove());  // found; not for readers
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


#: What the cover says under the title.
BOOK_SUBTITLE = "Eight machine-learning papers of 2019, explained, run and measured"


def git_head() -> str:
    """The checked-out commit (short), or ``RFY_GIT_COMMIT`` outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("RFY_GIT_COMMIT", "unknown")[:7]


def toc_pages(toc_path: Path) -> list[str]:
    """The book's pages in reading order, as paths of the built HTML (``book/intro.html``, …)."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]] + [chapter["file"] for part in toc.get("parts", []) for chapter in part["chapters"]]
    return [f"{name}.html" for name in files]


def part_start_pages(pdf: Path, parts: int) -> list[int]:
    """The page of ``pdf`` on which each of the ``parts`` pages of the book starts, found by the marker text
    ``COMBINE`` puts at the start of each (``pdftotext``, from poppler-utils, reads the printed text)."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    sheets = text.split("\f")
    numbers = []
    for part in range(parts):
        marker = re.compile(rf"rfy-pdf-part-{part + 2}(?!\d)")  # parts 0 and 1 are the cover and the contents
        found = [number for number, sheet in enumerate(sheets, 1) if marker.search(sheet)]
        if not found:
            raise RuntimeError(f"the start of page {part + 1} of the book was not found in {pdf}")
        numbers.append(found[0])
    return numbers


def build_pdf(html_root: Path, output: Path, chromium: str, pages: list[str], title: str = "Read For You",
              subtitle: str = "", built: str = "") -> int:
    """Print ``pages`` of the built book at ``html_root`` into one PDF at ``output``, after a title sheet and
    a contents sheet with page numbers; bookmarks follow the headings. Return the number of pages."""
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
    settings = {"format": "A4", "print_background": True, "display_header_footer": True, "outline": True,
                "tagged": True, "header_template": "<div></div>", "footer_template": FOOTER,
                "margin": {"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"}}
    server, base = serve(html_root)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": PRINT_WIDTH_PX, "height": 1000})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
            page.goto(base + shell, wait_until="load", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(MATHJAX_DONE, timeout=PAGE_TIMEOUT_MS)
            count = page.evaluate(COMBINE, {"pages": [base + name for name in pages], "title": title,
                                            "subtitle": subtitle, "built": built})
            page.wait_for_load_state("networkidle")
            page.emulate_media(media="print")
            scaled = page.evaluate(FIT_EQUATIONS)
            if scaled:
                print(f"  {scaled} display equation(s) scaled down to fit the printed column", file=sys.stderr)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.pdf(path=str(output), **settings)  # first pass: where each part starts
            page.evaluate(NUMBER_CONTENTS, part_start_pages(output, count))
            page.pdf(path=str(output), **settings)
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
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    count = build_pdf(root, output, args.chromium, args.pages or toc_pages(ROOT / "_toc.yml"),
                      title=config.get("title", "Read For You"), subtitle=BOOK_SUBTITLE,
                      built=f"Built {time.strftime('%d %B %Y')} from commit {git_head()}")
    print(f"{output}: {count} pages of the book, {output.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.0f} s")
    problems = pdf_problems(output)
    for problem in problems:
        print(f"{output}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
