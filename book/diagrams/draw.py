"""Method diagrams, one per chapter, drawn with matplotlib as SVG.

``python book/diagrams/draw.py`` writes ``book/diagrams/<slug>.svg`` for every chapter slug of
``rfy.chapters.slugs()``; ``python book/diagrams/draw.py neural-ode`` draws one. The output is
deterministic (a fixed ``svg.hashsalt``, no date in the metadata), so re-drawing an unchanged
diagram reproduces the committed file byte for byte.

Every diagram uses one canvas: the book's column width (6.5 in) plus a thin white margin,
coordinates in hundredths of an inch, one text size, and the book's palette
(``rfy.plotting.COLORS``): blue for the model being trained, red for losses, green for priors and
fixed structure, yellow for sampling and data selection, grey for data.
"""
from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Circle, Ellipse, FancyArrowPatch, FancyBboxPatch  # noqa: E402

from rfy.chapters import slugs  # noqa: E402
from rfy.plotting import COLORS, COLUMN_WIDTH_IN  # noqa: E402

HERE = Path(__file__).resolve().parent
CAPTIONS = HERE / "captions.json"

#: Canvas units per inch: coordinates are hundredths of an inch.
UNIT = 100
WIDTH = COLUMN_WIDTH_IN * UNIT
#: White space around the drawing area, so that no line or letter touches the image's edge.
MARGIN = 8
#: The one text size, in points. A 6.5 in diagram shown 700 px wide draws 11 pt text about 16 px
#: high, like the body text; on a 360 px phone column about 8.5 px.
FONT = 11
TEXT = "#222222"

#: A box's role picks its colour.
ROLES = {
    "model": COLORS["ours"],
    "loss": COLORS["baseline"],
    "prior": COLORS["reference"],
    "sample": COLORS["accent"],
    "data": COLORS["data"],
}

STYLE = {
    "svg.hashsalt": "rfy-diagrams",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": FONT,
    "text.color": TEXT,
}


def style() -> contextlib.AbstractContextManager:
    """Matplotlib's defaults plus ``STYLE``, whatever the caller's settings (``use_book_style``'s
    tight bounding box, for one, would change the files), so that a diagram always draws the same."""
    return plt.style.context(["default", STYLE])


def tint(color: str, amount: float = 0.16) -> tuple[float, float, float]:
    """The colour mixed with white: ``amount * color + (1 - amount) * white``."""
    return tuple(amount * c + (1 - amount) for c in to_rgb(color))


@dataclass(frozen=True)
class Box:
    """A drawn box: centre ``(x, y)`` and size ``(w, h)`` in canvas units."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)


@dataclass
class Layout:
    """What a diagram drew, kept so that ``layout_problems`` can check it: boxes with the text in
    them, free-standing texts, and arrows as (start, end, rad)."""

    boxes: list[tuple[Box, object]]
    notes: list[object]
    arrows: list[tuple[tuple[float, float], tuple[float, float], float]]


def canvas(height_in: float) -> tuple[plt.Figure, plt.Axes]:
    """A column-wide figure whose single axes spans it, 1 unit = 1/100 in, y pointing up; the
    drawing area is ``[0, WIDTH] × [0, 100 · height_in]``, framed by ``MARGIN`` units of white."""
    fig = plt.figure(figsize=(COLUMN_WIDTH_IN + 2 * MARGIN / UNIT, height_in + 2 * MARGIN / UNIT))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-MARGIN, WIDTH + MARGIN)
    ax.set_ylim(-MARGIN, height_in * UNIT + MARGIN)
    ax.set_axis_off()
    ax.rfy_layout = Layout([], [], [])
    return fig, ax


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str = "", role: str = "model",
        size: float = FONT, dashed: bool = False, bold: bool = False) -> Box:
    """Draw a rounded box centred at ``(x, y)`` with ``text`` in it; ``role`` is one of ``ROLES``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {tuple(ROLES)}, got {role!r}")
    color = ROLES[role]
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=7",
                                facecolor=tint(color), edgecolor=color, linewidth=1.4,
                                linestyle=(0, (4, 2.5)) if dashed else "-"))
    drawn = Box(x, y, w, h)
    label = None
    if text:
        label = ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.35,
                        fontweight="bold" if bold else "normal")
    ax.rfy_layout.boxes.append((drawn, label))
    return drawn


def arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], color: str = TEXT,
          dashed: bool = False, rad: float = 0.0, width: float = 1.3) -> None:
    """Draw an arrow from ``start`` to ``end`` (curved by ``rad``, as in matplotlib's ``arc3``)."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, color=color,
                                 linewidth=width, linestyle=(0, (4, 2.5)) if dashed else "-",
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0))
    ax.rfy_layout.arrows.append((start, end, rad))


def note(ax: plt.Axes, x: float, y: float, text: str, size: float = FONT, color: str = TEXT,
         ha: str = "center", va: str = "center", bold: bool = False) -> None:
    """Write ``text`` at ``(x, y)`` without a box."""
    ax.rfy_layout.notes.append(ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=color, linespacing=1.35,
                                         fontweight="bold" if bold else "normal"))


def heading(ax: plt.Axes, x: float, y: float, text: str) -> None:
    """A panel heading, left-aligned at ``(x, y)``."""
    note(ax, x, y, text, size=FONT, ha="left", bold=True)


def _extent(artist: object, ax: plt.Axes, renderer: object) -> tuple[float, float, float, float]:
    """``artist``'s window extent in canvas units, as (x0, y0, x1, y1)."""
    (x0, y0), (x1, y1) = ax.transData.inverted().transform(artist.get_window_extent(renderer).get_points())
    return x0, y0, x1, y1


def _overlap(a: tuple[float, ...], b: tuple[float, ...], slack: float = 1.0) -> bool:
    """Whether rectangles ``a`` and ``b`` (x0, y0, x1, y1) overlap by more than ``slack`` each way."""
    return min(a[2], b[2]) - max(a[0], b[0]) > slack and min(a[3], b[3]) - max(a[1], b[1]) > slack


def _arc_points(start: tuple[float, float], end: tuple[float, float], rad: float, n: int = 40) -> np.ndarray:
    """Points along matplotlib's ``arc3`` connection: a quadratic Bezier whose control point is the
    midpoint moved by ``rad`` times the chord, turned a quarter (x_c = x_m + rad·dy, y_c = y_m − rad·dx)."""
    (x0, y0), (x1, y1) = start, end
    control = ((x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0))
    s = np.linspace(0.08, 0.92, n)[:, None]
    return (1 - s) ** 2 * np.array(start) + 2 * s * (1 - s) * np.array(control) + s ** 2 * np.array(end)


def layout_problems(fig: plt.Figure, pad: float = 3.0, margin: float = 5.0) -> list[str]:
    """What is wrong with a drawn diagram's layout, in words (an empty list when nothing is):
    a text or box closer than ``margin`` units to the canvas's edge, two texts overlapping, a box's
    text not inside its box (with ``pad`` units to spare), a free text overlapping a box without
    lying wholly inside it, and an arrow running through a text."""
    ax = fig.axes[0]
    layout = ax.rfy_layout
    renderer = fig.canvas.get_renderer()
    (left, width), (bottom, height) = ax.get_xlim(), ax.get_ylim()
    texts = [(label, f"box text {label.get_text()!r}") for _, label in layout.boxes if label is not None]
    texts += [(note, f"text {note.get_text()!r}") for note in layout.notes]
    extents = [(_extent(t, ax, renderer), name) for t, name in texts]
    problems = []
    for (x0, y0, x1, y1), name in extents:
        if x0 < left + margin or y0 < bottom + margin or x1 > width - margin or y1 > height - margin:
            problems.append(f"{name} reaches the canvas's edge")
    for i, (a, name_a) in enumerate(extents):
        for b, name_b in extents[i + 1:]:
            if _overlap(a, b):
                problems.append(f"{name_a} overlaps {name_b}")
    for drawn, label in layout.boxes:
        rect = (drawn.x - drawn.w / 2, drawn.y - drawn.h / 2, drawn.x + drawn.w / 2, drawn.y + drawn.h / 2)
        if (rect[0] < left + margin or rect[1] < bottom + margin or rect[2] > width - margin
                or rect[3] > height - margin):
            problems.append(f"a box at ({drawn.x}, {drawn.y}) reaches the canvas's edge")
        if label is not None:
            x0, y0, x1, y1 = _extent(label, ax, renderer)
            if x0 < rect[0] + pad or x1 > rect[2] - pad or y0 < rect[1] + pad or y1 > rect[3] - pad:
                problems.append(f"box text {label.get_text()!r} does not fit its box")
        for note in layout.notes:
            x0, y0, x1, y1 = _extent(note, ax, renderer)
            inside = x0 >= rect[0] + pad and x1 <= rect[2] - pad and y0 >= rect[1] + pad and y1 <= rect[3] - pad
            if _overlap((x0, y0, x1, y1), rect) and not inside:
                problems.append(f"text {note.get_text()!r} overlaps a box")
    for start, end, rad in layout.arrows:
        points = _arc_points(start, end, rad)
        for (x0, y0, x1, y1), name in extents:
            inside_x = (points[:, 0] > x0 + 1) & (points[:, 0] < x1 - 1)
            if (inside_x & (points[:, 1] > y0 + 1) & (points[:, 1] < y1 - 1)).any():
                problems.append(f"an arrow from {start} to {end} crosses {name}")
    return problems


# --- 1. Neural ODEs -------------------------------------------------------------------------------

def neural_ode() -> plt.Figure:
    """ResNet steps against an ODE block, and the adjoint's forward and backward solves."""
    fig, ax = canvas(3.5)
    heading(ax, 10, 335, "(a) ResNet steps, ODE block")

    def f(h: float, t: float) -> float:
        """The field drawn, dh/dt = 2.2 cos(3.2 t) − 0.6 h."""
        return 2.2 * np.cos(3.2 * t) - 0.6 * h

    x0, x1, y0, y1 = 40, 280, 55, 300
    ts = np.linspace(0, 1, 200)
    hs = [0.0]
    for a, b in zip(ts[:-1], ts[1:]):
        hs.append(hs[-1] + (b - a) * f(hs[-1], a))
    steps = np.linspace(0, 1, 5)
    euler = [0.0]
    for a, b in zip(steps[:-1], steps[1:]):
        euler.append(euler[-1] + (b - a) * f(euler[-1], a))
    lo, hi = min(min(hs), min(euler)), max(max(hs), max(euler))

    def point(t: float, h: float) -> tuple[float, float]:
        """Canvas position of (t, h) in panel (a)."""
        return x0 + t * (x1 - x0), y0 + 40 + (h - lo) / (hi - lo) * 130

    arrow(ax, (x0, y0), (x1 + 15, y0), width=1.0)
    arrow(ax, (x0, y0), (x0, y1), width=1.0)
    note(ax, x1 + 15, y0 - 18, "$t$")
    note(ax, x0 - 16, y1 - 10, "$h$")
    note(ax, x0, y0 - 18, "0")
    note(ax, x1, y0 - 18, "1")
    ax.plot(*zip(*[point(t, h) for t, h in zip(ts, hs)]), color=ROLES["model"], linewidth=2.2)
    ax.plot(*zip(*[point(t, h) for t, h in zip(steps, euler)]), color=ROLES["loss"], linewidth=1.6,
            marker="o", markersize=5)
    note(ax, 55, 282, "ResNet, 4 blocks:\n$h_{n+1} = h_n + f(h_n, \\theta_n)$", color=ROLES["loss"],
         ha="left", va="top")
    note(ax, 110, 75, "ODE: $dh/dt = f(h(t), t, \\theta)$", color=ROLES["model"], ha="left")

    heading(ax, 330, 335, "(b) Gradients by the adjoint")
    start = box(ax, 385, 265, 100, 44, "$h(t_0) = x$", role="data")
    end = box(ax, 595, 265, 80, 44, "$h(t_1)$", role="model")
    loss = box(ax, 595, 180, 90, 40, "$L(h(t_1))$", role="loss")
    arrow(ax, start.right, end.left, color=ROLES["model"], width=1.8)
    note(ax, 495, 303, "forward: ODESolve", color=ROLES["model"])
    note(ax, 495, 226, "keeps only $h(t_1)$")
    arrow(ax, end.bottom, loss.top)
    back = box(ax, 440, 105, 210, 80, "backward: one ODESolve\nof $[\\,h,\\ a,\\ \\partial L/\\partial\\theta\\,]$, "
               "$t_1 \\to t_0$\nfrom $a(t_1) = \\partial L/\\partial h(t_1)$", role="model")
    arrow(ax, loss.bottom, back.right, rad=-0.35)
    note(ax, 335, 30, "$\\dfrac{da}{dt} = -a^\\top \\dfrac{\\partial f}{\\partial h}$,   "
         "$\\dfrac{dL}{d\\theta} = -\\int_{t_1}^{t_0} a^\\top \\dfrac{\\partial f}{\\partial \\theta}\\,dt$",
         ha="left")
    return fig


# --- 2. Semi-unsupervised GM-DGM ------------------------------------------------------------------

def semi_unsupervised() -> plt.Figure:
    """GM-DGM's generative model y → z → x with a mixture prior, and its inference network."""
    fig, ax = canvas(3.6)
    heading(ax, 10, 345, "(a) Generative model")
    y = box(ax, 42, 285, 56, 40, "$y$", role="prior")
    z = box(ax, 42, 175, 56, 40, "$z$", role="prior")
    x = box(ax, 42, 65, 56, 40, "$x$", role="data")
    arrow(ax, y.bottom, z.top)
    arrow(ax, z.bottom, x.top)
    note(ax, 82, 290, "$p(y)$ keeps mass for the\nmasked + extra clusters", ha="left")
    note(ax, 82, 235, "$p(z \\mid y) = \\mathcal{N}(\\mu_y, \\mathrm{diag}\\,\\sigma_y^2)$", ha="left")
    note(ax, 82, 60, "$p(x \\mid z)$: Bernoulli decoder\n(it never sees $y$)", ha="left")
    # The mixture in latent space: solid components for labelled classes, dashed for the rest.
    cx, cy = 205, 178
    components = [(-62, 12, 0, "-"), (-22, -18, 30, "-"), (10, 24, -20, "-"),
                  (52, -10, 10, (0, (3, 2))), (80, 24, 60, (0, (3, 2)))]
    for dx, dy, angle, style in components:
        color = ROLES["model"] if style == "-" else ROLES["sample"]
        ax.add_patch(Ellipse((cx + dx, cy + dy), 40, 22, angle=angle, facecolor=tint(color, 0.3),
                             edgecolor=color, linewidth=1.3, linestyle=style))
    note(ax, 180, 130, "labelled classes", color=ROLES["model"])
    note(ax, 180, 110, "masked + extra", color="#9a6b12")

    heading(ax, 325, 345, "(b) Inference and objective")
    xi = box(ax, 355, 240, 50, 40, "$x$", role="data")
    qy = box(ax, 470, 285, 120, 40, "$q(y \\mid x)$", role="model")
    qz = box(ax, 470, 195, 130, 40, "$q(z \\mid x, y)$", role="model")
    arrow(ax, (xi.x + 10, xi.y + 20), qy.left, rad=-0.2)
    arrow(ax, (xi.x + 10, xi.y - 20), qz.left, rad=0.2)
    arrow(ax, qy.bottom, qz.top)
    note(ax, 480, 240, "labelled: $y$ given\nunlabelled: every $y$", ha="left")
    lab = box(ax, 486, 115, 322, 40, "labelled: $\\mathcal{L}(x, y) + \\alpha \\log q(y \\mid x)$",
              role="loss")
    box(ax, 486, 52, 322, 48, "unlabelled: $\\sum_y q(y \\mid x)\\,\\mathcal{L}(x, y) + "
        "\\mathcal{H}[q(y \\mid x)]$", role="loss", dashed=True)
    arrow(ax, qz.bottom, lab.top)
    return fig


# --- 3. DB-VAE ------------------------------------------------------------------------------------

def debiasing() -> plt.Figure:
    """The DB-VAE's encoder heads and decoder, and the per-epoch resampling loop."""
    fig, ax = canvas(3.7)
    heading(ax, 10, 355, "(a) One encoder: a classifier and a VAE")
    x = box(ax, 35, 265, 44, 40, "$x$", role="data")
    enc = box(ax, 125, 265, 100, 44, "encoder", role="model")
    arrow(ax, x.right, enc.left)
    yhat = box(ax, 260, 315, 110, 34, "logit $\\hat y$", role="model")
    mu = box(ax, 260, 265, 110, 34, "$\\mu(x)$", role="model")
    sig = box(ax, 260, 215, 110, 34, "$\\log \\sigma^2(x)$", role="model")
    for target in (yhat, mu, sig):
        arrow(ax, enc.right, target.left)
    z = box(ax, 410, 240, 125, 40, "$z = \\mu + \\sigma \\odot \\varepsilon$", role="sample")
    arrow(ax, mu.right, (z.x - z.w / 2, z.y + 8))
    arrow(ax, sig.right, (z.x - z.w / 2, z.y - 8))
    dec = box(ax, 535, 240, 80, 40, "decoder", role="model")
    arrow(ax, z.right, dec.left)
    xh = box(ax, 615, 240, 40, 40, "$\\hat x$", role="data")
    arrow(ax, dec.right, xh.left)
    box(ax, 470, 170, 340, 40, "$c_1\\,\\mathrm{CE}(y, \\hat y) + \\mathbb{1}[y{=}1]\\,"
        "(c_2 \\Vert x - \\hat x \\Vert_1 + c_3\\,\\mathrm{KL})$", role="loss")

    heading(ax, 10, 130, "(b) Every epoch: resample the positives")
    s1 = box(ax, 70, 85, 130, 64, "encode the\npositives: $\\mu(x)$", role="model")
    s2 = box(ax, 222, 85, 135, 64, "histogram each\nlatent dim: $\\hat Q_i$", role="prior")
    s3 = box(ax, 405, 85, 185, 64, "$W(x) \\propto$\n$\\prod_i\\, [\\hat Q_i(\\mu_i(x)) + \\alpha]^{-1}$",
             role="sample")
    s4 = box(ax, 578, 85, 138, 74, "draw positives\nby $W$, negatives\nuniformly", role="sample")
    for a, b in ((s1, s2), (s2, s3), (s3, s4)):
        arrow(ax, a.right, b.left)
    arrow(ax, s4.bottom, s1.bottom, dashed=True, rad=-0.08)
    note(ax, 325, 12, "train one epoch on the drawn batches, then repeat")
    return fig


# --- 4. Preferences -------------------------------------------------------------------------------

def preferences() -> plt.Figure:
    """The three processes: the policy acts, clips are compared, the reward model is refitted."""
    fig, ax = canvas(3.3)
    env = box(ax, 90, 270, 165, 48, "environment\n(true reward hidden)", role="data")
    pol = box(ax, 90, 120, 150, 50, "policy $\\pi$\n(PPO)", role="model")
    arrow(ax, (pol.x - 30, pol.y + pol.h / 2), (env.x - 30, env.y - env.h / 2))
    arrow(ax, (env.x + 30, env.y - env.h / 2), (pol.x + 30, pol.y + pol.h / 2))
    note(ax, 52, 195, "$a_t$", ha="right")
    note(ax, 128, 195, "$o_{t+1}$", ha="left")
    clips = box(ax, 348, 270, 178, 48, "pairs of clips $(\\sigma^1, \\sigma^2)$,\n25 steps each",
                role="sample")
    arrow(ax, env.right, clips.left)
    note(ax, 220, 290, "episodes")
    lab = box(ax, 555, 270, 150, 48, "labeller: a person\nor a script", role="data")
    arrow(ax, clips.right, lab.left)
    rm = box(ax, 450, 115, 320, 84, "", role="model")
    note(ax, rm.x, rm.y + 24, "reward model $\\hat r(o, a)$, ensemble of 3:")
    note(ax, rm.x, rm.y - 10, "$\\hat P[\\sigma^1 \\succ \\sigma^2] = \\mathrm{sigmoid}(\\hat R^1 - \\hat R^2)$,"
         "\ncross-entropy with $0.9\\,\\hat P + 0.05$")
    arrow(ax, lab.bottom, (lab.x, rm.y + rm.h / 2))
    note(ax, lab.x - 8, 200, "$\\mu \\in \\{(1,0),\\,(0,1),\\,(\\frac{1}{2},\\frac{1}{2})\\}$", ha="right")
    arrow(ax, rm.left, pol.right, color=ROLES["model"], width=1.8)
    note(ax, 228, 135, "$\\hat r(o_t, a_t)$,", color=ROLES["model"])
    note(ax, 228, 98, "normalised", color=ROLES["model"])
    note(ax, 325, 25, "In turn: the policy acts, new pairs are labelled, the reward model is refitted.")
    return fig


# --- 5. RandWire ----------------------------------------------------------------------------------

def _ws_edges(n: int) -> list[tuple[int, int]]:
    """A fixed small-world graph on ``n`` ring nodes: each node joined to the next two, a few rewired."""
    edges = {(i, (i + k) % n) for i in range(n) for k in (1, 2)}
    for old, new in (((1, 3), (1, 6)), ((4, 6), (4, 0)), ((5, 6), (5, 2))):
        edges.discard(old)
        edges.add(new)
    return sorted(tuple(sorted(e)) for e in edges)


def _node(ax: plt.Axes, p: tuple[float, float], role: str = "prior") -> None:
    """A graph node: a small filled circle."""
    ax.add_patch(Circle(p, 7, facecolor=tint(ROLES[role], 0.5), edgecolor=ROLES[role], linewidth=1.1, zorder=3))


def _edge(ax: plt.Axes, a: tuple[float, float], b: tuple[float, float], color: str, rad: float = 0.0) -> None:
    """A thin directed graph edge from node ``a`` to node ``b``."""
    ax.add_patch(FancyArrowPatch(a, b, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=8,
                                 color=color, linewidth=0.9, shrinkA=7, shrinkB=7))


def randwire() -> plt.Figure:
    """Generator → undirected graph → DAG with input/output nodes → triplet nodes → stages."""
    fig, ax = canvas(3.9)
    n = 8
    edges = _ws_edges(n)
    top = 315
    gen = box(ax, 66, top, 126, 76, "generator\nER($P$), BA($M$),\nWS($K$, $P$)", role="sample")
    cx, r = 215, 40
    pos = {i: (cx + r * np.cos(np.pi / 2 - 2 * np.pi * i / n), top + r * np.sin(np.pi / 2 - 2 * np.pi * i / n))
           for i in range(n)}
    for a, b in edges:
        ax.plot(*zip(pos[a], pos[b]), color=ROLES["data"], linewidth=1.1)
    for p in pos.values():
        _node(ax, p)
    arrow(ax, gen.right, (cx - r - 14, top))
    note(ax, cx, 255, "undirected graph")
    xs = {i: 380 + 28 * i for i in range(n)}
    base = top - 10
    arrow(ax, (cx + r + 14, top), (320, top))
    for a, b in edges:
        _edge(ax, (xs[a], base), (xs[b], base), ROLES["data"], rad=-0.5)
    inp, out = (345, base - 30), (xs[n - 1] + 32, base - 30)
    for i in range(n):
        if not any(b == i for _, b in edges):
            _edge(ax, inp, (xs[i], base), ROLES["model"])
        if not any(a == i for a, _ in edges):
            _edge(ax, (xs[i], base), out, ROLES["model"])
    for x in xs.values():
        _node(ax, (x, base))
    _node(ax, inp, "model")
    _node(ax, out, "model")
    note(ax, inp[0] - 12, inp[1], "in", ha="right")
    note(ax, out[0] + 12, out[1], "out", ha="left")
    note(ax, 478, 255, "DAG: edges from low to high index")

    heading(ax, 10, 215, "Every node")
    ins = [(40, 180), (40, 145), (40, 110)]
    agg = box(ax, 140, 145, 100, 46, "$\\sum_i \\sigma(\\omega_{ij})\\, y_i$", role="prior")
    for i, p in enumerate(ins):
        note(ax, p[0] - 16, p[1], f"$y_{i + 1}$")
        arrow(ax, p, agg.left)
    relu = box(ax, 240, 145, 60, 40, "ReLU", role="model")
    conv = box(ax, 345, 145, 122, 40, "SepConv 3×3", role="model")
    bn = box(ax, 440, 145, 46, 40, "BN", role="model")
    for a, b in ((agg, relu), (relu, conv), (conv, bn)):
        arrow(ax, a.right, b.left)
    for dy in (30, 0, -30):
        arrow(ax, bn.right, (520, bn.y + dy))
    note(ax, 530, 145, "$y_j$ to all\nsuccessors", ha="left")

    heading(ax, 10, 75, "Network (every stage draws its own graph)")
    parts = [("stem", "data", 70), ("stage 1\n$C$", "prior", 86), ("stage 2\n$2C$", "prior", 86),
             ("stage 3\n$4C$", "prior", 86), ("1×1 conv,\npool, FC", "data", 110)]
    x = 40
    prev = None
    for text, role, w in parts:
        b = box(ax, x + w / 2, 29, w, 54, text, role=role)
        if prev is not None:
            arrow(ax, prev.right, b.left)
        prev = b
        x += w + 40
    return fig


# --- 6. Voter model -------------------------------------------------------------------------------

def voters() -> plt.Figure:
    """One trunk and the four heads compared, each with its target from the same votes."""
    fig, ax = canvas(3.5)
    x = box(ax, 325, 320, 110, 36, "photo $x$", role="data")
    trunk = box(ax, 325, 255, 250, 44, "shared trunk $h = f_\\theta(x)$", role="model")
    arrow(ax, x.bottom, trunk.top)
    cols = [82, 244, 406, 568]
    heads = [
        ("regression", "mean vote $\\bar v$\n(squared error)"),
        ("classification", "$\\bar v$ in 10 bins\n(cross-entropy)"),
        ("vote distribution", "$p_\\theta(l \\mid x)$,\n$l \\in \\{0,1,2,3\\}$"),
        ("voter model", "$p_\\theta(l \\mid x, e_u)$"),
    ]
    for col, (name, target) in zip(cols, heads):
        head = box(ax, col, 170, 150, 40, name, role="model")
        arrow(ax, (trunk.x + (col - trunk.x) * 0.55, trunk.y - trunk.h / 2), head.top)
        out = box(ax, col, 100, 150, 56, target, role="loss")
        arrow(ax, head.bottom, out.top)
    emb = box(ax, 575, 255, 122, 54, "voter $u$:\n$e_u \\in \\mathbb{R}^8$", role="prior")
    arrow(ax, emb.bottom, (cols[3] + 45, 190))
    note(ax, 163, 45, "target: the mean of 3–5 votes")
    note(ax, 487, 45, "target: every single vote")
    ax.plot([10, 315], [28, 28], color=ROLES["data"], linewidth=1)
    ax.plot([335, 640], [28, 28], color=ROLES["data"], linewidth=1)
    note(ax, 487, 12, "voter model score: mean of 200 voters", color=ROLES["model"])
    return fig


# --- 7. MixMatch ----------------------------------------------------------------------------------

def mixmatch() -> plt.Figure:
    """Augment, guess, sharpen, MixUp, and the two losses of one MixMatch batch."""
    fig, ax = canvas(3.4)
    xb = box(ax, 50, 280, 96, 50, "labelled\n$x_b,\\ p_b$", role="data")
    ub = box(ax, 50, 160, 96, 50, "unlabelled\n$u_b$", role="data")
    xa = box(ax, 192, 280, 150, 50, "augment once\n$\\hat x_b$", role="sample")
    ua = box(ax, 192, 160, 150, 58, "augment $K$ times\n$\\hat u_{b,1}, \\dots, \\hat u_{b,K}$", role="sample")
    arrow(ax, xb.right, xa.left)
    arrow(ax, ub.right, ua.left)
    guess = box(ax, 175, 46, 220, 80, "", role="model")
    note(ax, guess.x, guess.y + 22, "guess (no gradient):")
    note(ax, guess.x, guess.y - 12, "$\\bar q_b = \\dfrac{1}{K}\\sum_k p_\\theta(y \\mid \\hat u_{b,k})$")
    sharp = box(ax, 375, 46, 130, 80, "sharpen:\n$q_b \\propto \\bar q_b^{\\,1/T}$", role="model")
    arrow(ax, (ua.x - 15, ua.y - ua.h / 2), (guess.x - 15, guess.y + guess.h / 2))
    arrow(ax, guess.right, sharp.left)
    mix = box(ax, 375, 220, 140, 120, "", role="sample")
    note(ax, mix.x, mix.y + 40, "MixUp $\\mathcal{W}$ with")
    note(ax, mix.x, mix.y + 18, "a shuffled copy:")
    note(ax, mix.x, mix.y - 8, "$\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)$,")
    note(ax, mix.x, mix.y - 36, "$\\lambda' = \\max(\\lambda, 1{-}\\lambda)$")
    arrow(ax, xa.right, (mix.x - mix.w / 2, xa.y))
    arrow(ax, ua.right, (mix.x - mix.w / 2, ua.y))
    arrow(ax, sharp.top, mix.bottom)
    note(ax, 420, 120, "$(\\hat u_{b,k}, q_b)$", ha="left")
    lx = box(ax, 565, 265, 140, 54, "$\\mathcal{X}'$:\ncross-entropy", role="loss")
    lu = box(ax, 565, 175, 140, 54, "$\\mathcal{U}'$: squared\nerror $\\times\\,\\lambda_{\\mathcal{U}}$",
             role="loss")
    arrow(ax, (mix.x + mix.w / 2, lx.y), lx.left)
    arrow(ax, (mix.x + mix.w / 2, lu.y), lu.left)
    note(ax, 565, 90, "$\\lambda_{\\mathcal{U}}$ ramped\nup from 0")
    return fig


# --- 8. Divide and conquer ------------------------------------------------------------------------

def divide_conquer() -> plt.Figure:
    """Cluster, give each cluster a slice of the embedding, re-cluster and re-match, then merge."""
    fig, ax = canvas(3.6)
    palette = [ROLES["model"], ROLES["loss"], ROLES["prior"], ROLES["sample"]]
    x = box(ax, 40, 300, 50, 40, "$x$", role="data")
    trunk = box(ax, 140, 300, 110, 44, "trunk $\\phi(x)$", role="model")
    arrow(ax, x.right, trunk.left)
    bx, by, bw, bh = 255, 282, 200, 36
    for k in range(4):
        ax.add_patch(FancyBboxPatch((bx + k * bw / 4, by), bw / 4, bh, boxstyle="square,pad=0",
                                    facecolor=tint(palette[k], 0.35), edgecolor=palette[k], linewidth=1.3))
        note(ax, bx + (k + 0.5) * bw / 4, by + bh / 2, f"$f_{k + 1}$")
    arrow(ax, trunk.right, (bx, by + bh / 2))
    note(ax, bx + bw / 2, by + bh + 16, "embedding: $K$ slices, each normalised")
    note(ax, 468, 300, "learner $k$ = slice $f_k$", ha="left")

    heading(ax, 10, 235, "Divide")
    km = box(ax, 135, 180, 240, 50, "k-means on $\\phi(x) / \\Vert \\phi(x) \\Vert$\ninto $K$ clusters",
             role="sample")
    hung = box(ax, 135, 100, 240, 50, "Hungarian matching:\nnew cluster → old learner", role="sample")
    arrow(ax, km.bottom, hung.top)
    arrow(ax, (trunk.x, trunk.y - trunk.h / 2), km.top)
    note(ax, 148, 250, "every $T$ epochs", ha="left")
    heading(ax, 290, 235, "Conquer")
    rng = np.random.default_rng(0)
    centres = [(320, 180), (385, 190), (330, 120), (395, 125)]
    for k, (cx, cy) in enumerate(centres):
        pts = rng.normal(size=(9, 2)) * 8
        ax.scatter(cx + pts[:, 0], cy + pts[:, 1], s=10, color=palette[k], zorder=3)
    arrow(ax, hung.right, (295, 110))
    conq = box(ax, 545, 155, 190, 74, "a batch from cluster $k$\ntrains only $f_k$\n(margin loss)",
               role="loss")
    arrow(ax, (425, 155), conq.left)
    arrow(ax, (conq.x + 40, conq.y + conq.h / 2), (bx + bw * 0.875, by), dashed=True, rad=0.15)

    heading(ax, 10, 50, "Phases")
    note(ax, 110, 50, "merge: $f = [f_1, \\dots, f_K] / \\sqrt{K}$", ha="left")
    phases = [("1. learners on slices", "model", 200), ("2. full embedding", "prior", 200),
              ("3. $K = 1$, all data", "data", 200)]
    x0 = 20
    for text, role, w in phases:
        box(ax, x0 + w / 2, 16, w - 6, 28, text, role=role)
        x0 += w + 5
    return fig


DIAGRAMS: dict[str, Callable[[], plt.Figure]] = {
    "neural-ode": neural_ode,
    "semi-unsupervised": semi_unsupervised,
    "debiasing": debiasing,
    "preferences": preferences,
    "randwire": randwire,
    "voters": voters,
    "mixmatch": mixmatch,
    "divide-conquer": divide_conquer,
}


def draw(slug: str, directory: Path = HERE, fmt: str = "svg") -> Path:
    """Draw chapter ``slug``'s diagram to ``directory/<slug>.<fmt>`` and return the path."""
    if slug not in DIAGRAMS:
        raise ValueError(f"slug must be one of {tuple(DIAGRAMS)}, got {slug!r}")
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    with style():
        fig = DIAGRAMS[slug]()
        path = Path(directory) / f"{slug}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(path, format=fmt, metadata=metadata, dpi=108 if fmt == "png" else None)
        plt.close(fig)
    return path


def captions() -> dict[str, dict[str, str]]:
    """Every diagram's caption and alt text, from ``captions.json``: slug → {caption, alt}."""
    return json.loads(CAPTIONS.read_text(encoding="utf-8"))


def myst_figure(slug: str, directory: str = "../book/diagrams") -> str:
    """The MyST ``{figure}`` block that places chapter ``slug``'s diagram in a notebook, named
    ``fig-<slug>-method``, with its alt text and caption; ``directory`` is the path from the page."""
    entry = captions()[slug]
    return (f"```{{figure}} {directory}/{slug}.svg\n:name: fig-{slug}-method\n:alt: {entry['alt']}\n"
            f":width: 100%\n\n{entry['caption']}\n```")


def main(argv: list[str]) -> None:
    """Draw the diagrams named in ``argv`` (all chapters when empty); ``--png DIR`` also writes PNGs
    there, ``--myst`` prints each one's figure block instead of drawing."""
    if "--myst" in argv:
        for slug in [arg for arg in argv if arg != "--myst"] or slugs():
            print(myst_figure(slug), end="\n\n")
        return
    png_dir = None
    if "--png" in argv:
        at = argv.index("--png")
        if at + 1 == len(argv):
            raise SystemExit("--png needs a directory")
        png_dir = Path(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    missing = [slug for slug in slugs() if slug not in DIAGRAMS]
    if missing:
        raise SystemExit(f"no diagram for chapters {missing}")
    for slug in argv or slugs():
        print(draw(slug))
        if png_dir is not None:
            print(draw(slug, png_dir, fmt="png"))


if __name__ == "__main__":
    main(sys.argv[1:])
