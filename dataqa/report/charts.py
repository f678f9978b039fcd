"""Inline SVG charts for the reports: no JavaScript library, no external file.

Each function returns a :class:`markupsafe.Markup` ``<svg>`` element (no XML namespace
URL: inline SVG in HTML5 needs none, and the reports hold no URL at all). Every text
that may come from user data (class names, series names) is escaped here; hovering a
mark shows its exact value through an SVG ``<title>``.

Hand-written rather than matplotlib: a matplotlib SVG is ~10x larger per chart, embeds
its own fonts/paths and slows page load for a 100k-image report.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]
_LEFT, _RIGHT, _TOP = 56.0, 12.0, 24.0  # plot margins, pixels
FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# --------------------------------------------------------------------------- scales
def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2, 5 x 10^k inside [lo, hi] (only 10^k when the range spans > 3 decades)."""
    if lo <= 0 or hi <= 0 or not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    mults = (1,) if math.log10(hi / lo) > 3 else (1, 2, 5)
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10.0 ** k for m in mults if lo <= m * 10.0 ** k <= hi]
    return out or [lo, hi]


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] (log10 when ``log``) onto pixels [p0, p1]."""

    lo: float
    hi: float
    p0: float
    p1: float
    log: bool = False

    def __call__(self, v: float) -> float:
        f = (lambda x: math.log10(x)) if self.log else (lambda x: x)
        lo, hi = f(self.lo), f(self.hi)
        t = 0.5 if hi == lo else (f(v) - lo) / (hi - lo)
        return self.p0 + t * (self.p1 - self.p0)

    def ticks(self, n: int = 5) -> list[float]:
        return log_ticks(self.lo, self.hi) if self.log else nice_ticks(self.lo, self.hi, n)


def fmt(v: float) -> str:
    """Compact number for tick labels and tooltips."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if float(v).is_integer() and abs(v) < 1e6:
        return f"{int(v):,}"
    return f"{v:.3g}"


def _text(x: float, y: float, s: str, *, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>'
            f"{escape(s)}</text>")


def _short(s: str, n: int = 16) -> str:
    """Labels longer than ``n`` characters are cut (the full text is in a tooltip)."""
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _svg(width: float, height: float, body: list[str], title: str) -> Markup:
    head = (f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'height="{height:.0f}" role="img" aria-label="{escape(title)}" {FONT}>')
    cap = [_text(width / 2, 14, title, extra='font-weight="600" font-size="12"')] if title else []
    return Markup(head + "".join(cap + body) + "</svg>")


def _axes(x: Scale | None, y: Scale, *, xlabel: str, ylabel: str, width: float,
          height: float) -> list[str]:
    """Axis lines, y grid with tick labels, x ticks (numeric scales), axis titles."""
    out: list[str] = []
    left, right = (x.p0, x.p1) if x else (_LEFT, width - _RIGHT)
    for t in y.ticks():
        py = y(t)
        out.append(f'<line x1="{left:.1f}" y1="{py:.1f}" x2="{right:.1f}" y2="{py:.1f}" '
                   f'stroke="#e5e5e5"/>')
        out.append(_text(left - 4, py + 4, fmt(t), anchor="end"))
    out.append(f'<line x1="{left:.1f}" y1="{y.p0:.1f}" x2="{right:.1f}" y2="{y.p0:.1f}" '
               f'stroke="#888"/>')
    out.append(f'<line x1="{left:.1f}" y1="{y.p0:.1f}" x2="{left:.1f}" y2="{y.p1:.1f}" '
               f'stroke="#888"/>')
    if x is not None:
        for t in x.ticks():
            px = x(t)
            out.append(f'<line x1="{px:.1f}" y1="{y.p0:.1f}" x2="{px:.1f}" '
                       f'y2="{y.p0 + 4:.1f}" stroke="#888"/>')
            out.append(_text(px, y.p0 + 15, fmt(t)))
    if xlabel:
        out.append(_text((left + right) / 2, height - 4, xlabel))
    if ylabel:
        cy = (y.p0 + y.p1) / 2
        out.append(_text(12, cy, ylabel, extra=f'transform="rotate(-90 12 {cy:.1f})"'))
    return out



def _legend(names: Sequence[str], x: float, y: float, *,
            colors: Sequence[int] | None = None, dashed: Collection[str] = ()) -> list[str]:
    out = []
    for i, name in enumerate(names):
        yy = y + 14 * i
        c = color(colors[i] if colors is not None else i)
        if name in dashed:
            out.append(f'<line x1="{x:.1f}" y1="{yy - 4:.1f}" x2="{x + 10:.1f}" '
                       f'y2="{yy - 4:.1f}" stroke="{c}" stroke-width="2" '
                       'stroke-dasharray="3,2"/>')
        else:
            out.append(f'<rect x="{x:.1f}" y="{yy - 9:.1f}" width="10" height="10" '
                       f'fill="{c}"/>')
        out.append(_text(x + 14, yy, str(name), anchor="start"))
    return out


# --------------------------------------------------------------------------- charts
def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[float]], *,
              title: str = "", ylabel: str = "", height: int = 280) -> Markup:
    """Stacked bars: one bar per category (C,), one stacked segment per series (each (C,)).
    Category labels longer than 16 characters are shortened (full name on hover)."""
    cats = [str(c) for c in categories]
    names = list(series)
    values = np.array([np.asarray(series[s], dtype=float) for s in names]).reshape(len(names),
                                                                                  len(cats))
    totals = values.sum(axis=0) if len(names) else np.zeros(len(cats))
    legend_w = 12 + 7 * max((len(str(n)) for n in names), default=0) + 20
    width = max(360.0, min(1200.0, _LEFT + _RIGHT + 36 + legend_w + 22 * len(cats)))
    bottom = height - 78
    y = Scale(0.0, float(totals.max()) if len(cats) and totals.max() > 0 else 1.0,
              bottom, _TOP + 8)
    body = _axes(None, y, xlabel="", ylabel=ylabel, width=width - legend_w, height=height)
    pad = 36.0  # room for the first rotated category label
    plot_w = width - legend_w - _LEFT - _RIGHT - pad
    bw = plot_w / max(len(cats), 1)
    for j, cat in enumerate(cats):
        x0 = _LEFT + pad + j * bw
        base = 0.0
        for i, name in enumerate(names):
            v = float(values[i, j])
            if v <= 0:
                continue
            y_top, y_bot = y(base + v), y(base)
            body.append(f'<rect x="{x0 + bw * 0.1:.1f}" y="{y_top:.1f}" width="{bw * 0.8:.1f}" '
                        f'height="{max(y_bot - y_top, 0.5):.1f}" fill="{color(i)}">'
                        f"<title>{escape(cat)} / {escape(name)}: {fmt(v)}</title></rect>")
            base += v
        short = _short(cat)
        cx, cy = x0 + bw / 2, bottom + 10
        body.append(f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                    f'transform="rotate(-45 {cx:.1f} {cy:.1f})">{escape(short)}'
                    f"<title>{escape(cat)}: {fmt(float(totals[j]))}</title></text>")
    body += _legend(names, width - legend_w + 8, _TOP + 12)
    return _svg(width, height, body, title)


def histogram(values: Sequence[float] | np.ndarray, *, bins: int = 30, title: str = "",
              xlabel: str = "", ylabel: str = "images", log_x: bool = False,
              width: int = 420, height: int = 240) -> Markup:
    """Histogram of finite ``values`` (N,); ``log_x`` bins in log space (values > 0)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & ((v > 0) if log_x else True)]
    if v.size == 0:
        return _svg(width, height, [_text(width / 2, height / 2, "no data")], title)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = (lo / 1.1, hi * 1.1) if log_x else (lo - 0.5, hi + 0.5)
    edges = (np.geomspace(lo, hi, bins + 1) if log_x else np.linspace(lo, hi, bins + 1))
    counts, _ = np.histogram(v, bins=edges)
    x = Scale(lo, hi, _LEFT, width - _RIGHT, log=log_x)
    y = Scale(0.0, float(max(counts.max(), 1)), height - 36, _TOP + 6)
    body = _axes(x, y, xlabel=xlabel, ylabel=ylabel, width=width, height=height)
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        xa, xb = x(a), x(b)
        body.append(f'<rect x="{xa:.1f}" y="{y(c):.1f}" width="{max(xb - xa - 1, 0.8):.1f}" '
                    f'height="{y.p0 - y(c):.1f}" fill="{color(0)}">'
                    f"<title>{fmt(a)} to {fmt(b)}: {fmt(float(c))}</title></rect>")
    return _svg(width, height, body, title)


def scatter(x_values: Sequence[float] | np.ndarray, y_values: Sequence[float] | np.ndarray, *,
            title: str = "", xlabel: str = "", ylabel: str = "", log: bool = True,
            grid: int = 40, width: int = 420, height: int = 300) -> Markup:
    """Scatter of N points drawn as at most ``grid`` x ``grid`` circles: points are
    counted per cell (log-spaced when ``log``) and the radius grows with the count, so
    100,000 images cost no more than 100 (identical sizes, e.g. 28x28, are one circle)."""
    xv, yv = np.asarray(x_values, dtype=float), np.asarray(y_values, dtype=float)
    ok = np.isfinite(xv) & np.isfinite(yv) & ((xv > 0) & (yv > 0) if log else True)
    xv, yv = xv[ok], yv[ok]
    if xv.size == 0:
        return _svg(width, height, [_text(width / 2, height / 2, "no data")], title)

    def span(a: np.ndarray) -> tuple[float, float]:
        lo, hi = float(a.min()), float(a.max())
        if lo == hi:
            return (lo / 2, hi * 2) if log else (lo - 1, hi + 1)
        return (lo / 1.15, hi * 1.15) if log else (lo, hi)

    xs = Scale(*span(xv), _LEFT + 6, width - _RIGHT - 6, log=log)
    ys = Scale(*span(yv), height - 40, _TOP + 8, log=log)
    f = np.log10 if log else (lambda a: a)
    fx0, fx1 = f(xs.lo), f(xs.hi)
    fy0, fy1 = f(ys.lo), f(ys.hi)
    ix = np.clip(((f(xv) - fx0) / (fx1 - fx0) * grid).astype(int), 0, grid - 1)
    iy = np.clip(((f(yv) - fy0) / (fy1 - fy0) * grid).astype(int), 0, grid - 1)
    cell = ix * grid + iy
    uniq, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    # plot each cell at the mean of its points, so one exact size sits where it belongs
    mx = np.bincount(inverse, weights=xv) / counts
    my = np.bincount(inverse, weights=yv) / counts
    body = _axes(xs, ys, xlabel=xlabel, ylabel=ylabel, width=width, height=height)
    cmax = float(counts.max())
    for cx, cy, c in zip(mx, my, counts):
        r = 2.5 + 9.0 * math.sqrt(c / cmax)
        body.append(f'<circle cx="{xs(cx):.1f}" cy="{ys(cy):.1f}" r="{r:.1f}" '
                    f'fill="{color(0)}" fill-opacity="0.55">'
                    f"<title>~{fmt(cx)} x {fmt(cy)}: {fmt(float(c))} images</title></circle>")
    return _svg(width, height, body, title)


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
               title: str = "", xlabel: str = "", ylabel: str = "", log_x: bool = False,
               y_range: tuple[float, float] | None = None, width: int = 460,
               height: int = 280, colors: Mapping[str, int] | None = None,
               dashed: Collection[str] = ()) -> Markup:
    """Lines with markers; ``series`` maps a name to (xs, ys), each (n,). ``colors``
    gives a series a palette index (default: its position), names in ``dashed`` are
    drawn dashed with hollow markers (e.g. the training curve beside a solid validation
    curve of the same colour)."""
    pts = {str(k): (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items()}
    allx = np.concatenate([p[0] for p in pts.values()]) if pts else np.array([])
    ally = np.concatenate([p[1] for p in pts.values()]) if pts else np.array([])
    good = np.isfinite(allx) & np.isfinite(ally)
    if not good.any():
        return _svg(width, height, [_text(width / 2, height / 2, "no data")], title)
    xlo, xhi = float(allx[good].min()), float(allx[good].max())
    ylo, yhi = y_range or (float(ally[good].min()), float(ally[good].max()))
    if xlo == xhi:
        xlo, xhi = xlo - 1, xhi + 1
    if ylo == yhi:
        ylo, yhi = ylo - 1, yhi + 1
    legend_w = 16 + 7 * max(len(k) for k in pts) if len(pts) > 1 else 0
    xs = Scale(xlo, xhi, _LEFT, width - _RIGHT - legend_w, log=log_x and xlo > 0)
    ys = Scale(ylo, yhi, height - 40, _TOP + 8)
    body = _axes(xs, ys, xlabel=xlabel, ylabel=ylabel, width=width - legend_w, height=height)
    dash = {str(d) for d in dashed}
    index = {name: (colors or {}).get(name, i) for i, name in enumerate(pts)}
    for name, (x, y) in pts.items():
        c = color(index[name])
        ok = np.isfinite(x) & np.isfinite(y)
        # a value beyond an explicit y range sits on the frame's edge (its tooltip keeps
        # the true value) instead of a line running out of the chart
        coords = [(xs(a), ys(min(max(b, ylo), yhi) if y_range else b))
                  for a, b in zip(x[ok], y[ok])]
        style = ' stroke-dasharray="5,3"' if name in dash else ""
        if len(coords) > 1:
            d = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
            body.append(f'<polyline points="{d}" fill="none" stroke="{c}" '
                        f'stroke-width="2"{style}/>')
        fill = f'fill="#fff" stroke="{c}"' if name in dash else f'fill="{c}"'
        for (px, py), a, b in zip(coords, x[ok], y[ok]):
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" {fill}>'
                        f"<title>{escape(name)}: {fmt(a)} -> {fmt(b)}</title></circle>")
    if len(pts) > 1:
        body += _legend(list(pts), width - legend_w + 4, _TOP + 12,
                        colors=[index[n] for n in pts], dashed=dash)
    return _svg(width, height, body, title)


def heatmap(matrix: np.ndarray | Sequence[Sequence[float]], row_labels: Sequence[str],
            col_labels: Sequence[str], *, title: str = "", xlabel: str = "",
            ylabel: str = "", normalize_rows: bool = True, cell: int = 0) -> Markup:
    """Matrix (R, C) as coloured cells (e.g. a confusion matrix: rows = given class,
    columns = predicted). Colour = row share when ``normalize_rows``; counts are printed
    in the cells when they fit and always shown on hover."""
    m = np.asarray(matrix, dtype=float)
    r, c = m.shape
    cell = cell or max(14, min(40, 560 // max(r, c, 1)))
    label_w = 8 + 6.5 * min(16, max((len(str(s)) for s in row_labels), default=1))
    label_w = max(label_w, 12 + 6.5 * len(ylabel))  # the y label must not run into column labels
    top = _TOP + 8 + 6.5 * min(16, max((len(str(s)) for s in col_labels), default=1))
    width, height = label_w + c * cell + 30, top + r * cell + 24
    width = max(width, 20 + 7.0 * len(title))  # a narrow matrix must not clip its title
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalize_rows \
        else m / max(m.max(), 1e-12)
    body = []
    for i in range(r):
        for j in range(c):
            x0, y0 = label_w + j * cell, top + i * cell
            s = float(share[i, j])
            fill = f"rgba(78,121,167,{0.06 + 0.94 * s:.3f})" if m[i, j] else "#fafafa"
            body.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{cell}" height="{cell}" '
                        f'fill="{fill}" stroke="#fff"><title>{escape(str(row_labels[i]))} -> '
                        f"{escape(str(col_labels[j]))}: {fmt(float(m[i, j]))} "
                        f"({100 * s:.1f}%)</title></rect>")
            if cell >= 26 and m[i, j]:
                ink = "#fff" if s > 0.55 else "#222"
                body.append(_text(x0 + cell / 2, y0 + cell / 2 + 4, fmt(float(m[i, j])),
                                  extra=f'fill="{ink}" font-size="10"'))
    for i, lab in enumerate(row_labels):
        body.append(_text(label_w - 4, top + i * cell + cell / 2 + 4, _short(str(lab)),
                          anchor="end"))
    for j, lab in enumerate(col_labels):
        cx, cy = label_w + j * cell + cell / 2, top - 4
        body.append(_text(cx, cy, _short(str(lab)), anchor="start",
                          extra=f'transform="rotate(-60 {cx:.1f} {cy:.1f})"'))
    if xlabel:
        body.append(_text(label_w + c * cell / 2, height - 6, xlabel))
    if ylabel:
        body.append(_text(10, top - 8, ylabel, anchor="start"))
    return _svg(width, height, body, title)
