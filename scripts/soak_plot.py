#!/usr/bin/env python3
"""soak_plot.py CSV SVG [TITLE]: the soak test's plot (scripts/soak.sh).

Reads the samples soak.sh writes (test/bench/out/soak.csv: minute,
landing_mb, history_mb, p95_ms, ...) and writes a small SVG, standard
library only: landing MB and history MB over minutes in the upper panel,
handoff p95 ms in the lower one.
"""
import csv
import sys
from xml.sax.saxutils import escape

W, H = 720, 420
LEFT, RIGHT = 64, 150
PANELS = [  # (top, height, series, unit)
    (40, 200, [("landing_mb", "landing MB", "#1f77b4"), ("history_mb", "history MB", "#d62728")], "MB"),
    (290, 90, [("p95_ms", "handoff p95 ms", "#2ca02c")], "ms"),
]


def nice_max(v):
    if v <= 0:
        return 1.0
    m = 1.0
    while m * 10 < v:
        m *= 10
    while m < v:
        for f in (2, 2.5, 2):
            m *= f
            if m >= v:
                break
    return m


def main():
    src, dst = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "soak"
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("soak_plot: no samples in " + src)

    def num(r, k):
        try:
            return float(r[k])
        except (KeyError, ValueError, TypeError):
            return None

    xs = [num(r, "minute") for r in rows]
    xmax = max(1.0, max(x for x in xs if x is not None))
    pw = W - LEFT - RIGHT
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="13">{escape(title)}</text>',
    ]
    for top, ph, series, unit in PANELS:
        vals = [num(r, k) for r in rows for k, _, _ in series]
        ymax = nice_max(max([v for v in vals if v is not None] or [0]))
        out.append(f'<rect x="{LEFT}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        for i in range(5):
            y = top + ph - ph * i / 4
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{ymax * i / 4:g}</text>')
        out.append(f'<text x="12" y="{top + ph / 2:.1f}" transform="rotate(-90 12 {top + ph / 2:.1f})" '
                   f'text-anchor="middle">{unit}</text>')
        for n, (k, label, colour) in enumerate(series):
            pts = []
            for r, x in zip(rows, xs):
                v = num(r, k)
                if x is None or v is None:
                    continue
                pts.append(f"{LEFT + pw * x / xmax:.1f},{top + ph - ph * v / ymax:.1f}")
            if pts:
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{" ".join(pts)}"/>')
            ly = top + 14 + 16 * n
            out.append(f'<line x1="{LEFT + pw + 10}" y1="{ly - 4}" x2="{LEFT + pw + 28}" y2="{ly - 4}" '
                       f'stroke="{colour}" stroke-width="2"/>')
            out.append(f'<text x="{LEFT + pw + 32}" y="{ly}">{escape(label)}</text>')
    # minutes along the bottom panel
    top, ph = PANELS[-1][0], PANELS[-1][1]
    step = nice_max(xmax / 6)
    x = 0.0
    while x <= xmax + 1e-9:
        px = LEFT + pw * x / xmax
        out.append(f'<text x="{px:.1f}" y="{top + ph + 14}" text-anchor="middle">{x:g}</text>')
        x += step
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{top + ph + 30}" text-anchor="middle">minutes</text>')
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
