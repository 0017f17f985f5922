# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parts the HTML plan report (``plan_report``) is built from: style sheet, inline SVG bar
charts, tables, and the tolerant reading and formatting of plan values.

Pure string building: no I/O, no clock, nothing fetched. Every text that may come from the
cluster goes through ``esc``; colours live in the style sheet, so a chart is plain geometry
with class names and prints and scales like the rest of the page. Plans from older and newer
versions may miss keys or hold other types, so values are read with ``as_dict``, ``num``, ...
that never raise.
"""

from __future__ import annotations

import math
import re
from html import escape

from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB

# The chart is drawn in viewBox units; the page scales it to the width available.
WIDTH = 800
LABEL_END = 150            # node names end here (right-aligned)
PLOT_START = 158
PLOT_END = 672
VALUE_START = 680          # "before -> after" figures
ROW_H = 22
ROW_H_MANY = 17            # row height once a chart has more than MANY_ROWS nodes, so 64 nodes fit a screen or two
MANY_ROWS = 24
AXIS_H = 24
LABEL_CHARS = 22           # longer node names are shortened in the chart (full name on hover and in the tables)

CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--line:#d9e2ec;--soft:#f0f4f8;--before:#b4c4dc;--after:#2563eb;
--hot:#d97706;--bad:#b91c1c;--ok:#15803d;--band:#16a34a}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f5f7fa;color:var(--fg);-webkit-print-color-adjust:exact;print-color-adjust:exact;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:0 0 2px;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 8px}
h3{font-size:14px;margin:12px 0 6px}
p{margin:4px 0}
.sub{color:var(--muted);margin-bottom:10px;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 0;font-size:13px}
nav a{color:var(--after);text-decoration:none}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:12px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:10px 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.card span{display:block;color:var(--muted);font-size:12px}
.card b{display:block;font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.card.bad{border-color:var(--bad);background:#fdf2f2}
.card.good b{color:var(--ok)}
.banner{border-left:4px solid var(--hot);background:#fff7ed;padding:6px 10px;margin:6px 0;border-radius:4px}
.banner.bad{border-color:var(--bad);background:#fdf2f2}
.banner.good{border-color:var(--ok);background:#f0fdf4}
dl.settings{display:grid;grid-template-columns:repeat(auto-fit,minmax(290px,1fr));gap:2px 16px;margin:6px 0}
dl.settings div{display:flex;gap:8px;border-bottom:1px dotted var(--line);padding:2px 0}
dl.settings dt{color:var(--muted);flex:0 0 13em;overflow-wrap:anywhere}
dl.settings dd{margin:0;overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
table.moves{table-layout:fixed;min-width:560px}
table.moves th:nth-child(1){width:4.5em}table.moves th:nth-child(3){width:3.5em}table.moves th:nth-child(5){width:4.5em}
table.moves th:nth-child(2),table.moves th:nth-child(4){width:18%}
table.moves.run{min-width:760px}table.moves.run th:nth-child(7){width:7em}table.moves.run th:nth-child(8){width:5em}
td{overflow-wrap:anywhere}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
tr.failed td,li.bad{background:#fde8e8}
tr.skipped td{background:#fff4e5}
tr.not_started td{color:var(--muted)}
tr.extra td{background:#eef6ff}
tr.wave th{background:#fff;border-bottom:2px solid var(--line);padding-top:10px;text-align:left}
.tag{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#e4e7eb;white-space:nowrap}
.tag.mandatory,.tag.maintenance{background:#fde68a}
.tag.ok{background:#dcfce7;color:#166534}
.tag.failed{background:#fee2e2;color:#991b1b}
.tag.skipped{background:#ffedd5;color:#9a3412}
.tag.planned{background:#dbeafe;color:#1e40af}
.tag.offline,.tag.ignored{background:#e5e7eb;color:#4b5563}
details{margin:6px 0}
details>summary{cursor:pointer;font-weight:600;padding:3px 0}
details>summary .muted,.muted{color:var(--muted);font-weight:400}
ul.plain{margin:4px 0;padding-left:20px}
ul.plain li{margin:2px 0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--soft);padding:8px;border-radius:4px;font-size:12px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:var(--muted);margin:4px 0 0}
.legend i{display:inline-block;width:18px;height:10px;margin-right:5px;vertical-align:middle;border-radius:2px}
.legend i.before{background:var(--before)}
.legend i.after{background:var(--after)}
.legend i.hot{background:var(--hot)}
.legend i.cap{height:0;border-top:2px solid var(--bad)}
.legend i.thr{height:0;border-top:2px dashed var(--hot)}
.legend i.band{background:var(--band);opacity:.25}
.legend i.reserve{background:#e5e7eb;border:1px dashed var(--bad)}
.chart{overflow-x:auto}
.chart svg{display:block;width:100%;height:auto;min-width:620px}
svg text{font-size:11px;fill:var(--fg)}
svg .axis text{fill:var(--muted);font-size:11px}
svg .grid{stroke:#e4e7eb;stroke-width:1}
svg .b0{fill:var(--before)}
svg .b1{fill:var(--after)}
svg .b1.hot{fill:var(--hot)}
svg .cap{stroke:var(--bad);stroke-width:2}
svg .thr{stroke:var(--hot);stroke-width:1.5;stroke-dasharray:5 3}
svg .band{fill:var(--band);opacity:.13}
svg .reserve{fill:#e5e7eb;stroke:var(--bad);stroke-width:.8;stroke-dasharray:3 2}
svg .stripe{fill:#fff7ed}
svg .role-maintenance text.name{fill:#b45309;font-weight:600}
svg .role-offline text.name,svg .role-ignored text.name{fill:var(--muted);font-style:italic}
svg text.value{font-variant-numeric:tabular-nums;font-size:11px}
footer{color:var(--muted);font-size:12px;text-align:center;margin:16px 0}
@media (max-width:640px){
main{padding:8px}section{padding:8px 10px;border-radius:6px}h1{font-size:19px}
th,td{padding:2px 5px}.card b{font-size:17px}.chart svg{min-width:760px}
}
@media print{
body{background:#fff;font-size:11px}main{max-width:none;padding:0}nav{display:none}
section{border:none;border-top:1px solid var(--line);border-radius:0;padding:6px 0;margin:6px 0}
h2{break-after:avoid}tr,.card{break-inside:avoid}.chart svg{min-width:0}
details::details-content{content-visibility:visible;display:block}
details>summary{list-style:none}
}
"""


def esc(value):
    """Text for HTML content or a quoted attribute; None becomes an empty string."""
    return escape("" if value is None else str(value), quote=True)


def short(text, limit=LABEL_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def nice_ceiling(value):
    """Axis end and tick step: the value rounded up to a step of 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / 5.0
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw)
    return math.ceil(value / step - 1e-9) * step, step


def bar_chart(rows, unit="%", lines=(), band=None, caption=""):
    """Horizontal bars, one row per node.

    ``rows``: dicts with ``label``, ``before`` (or None), ``after``, ``full`` (where the node is
    full, or None), ``reserve_end`` (the end of the reserve kept back beyond ``full``, or None),
    ``hot`` (draw the after bar as over threshold), ``role`` and ``value`` (text at the right).
    ``lines``: (value, css class) drawn across all rows; ``band``: (low, high) shaded behind them.
    """
    values = [1.0]
    for row in rows:
        values.extend(v for v in (row.get("before"), row.get("after"), row.get("full"), row.get("reserve_end")) if v is not None)
    values.extend(v for v, _cls in lines)
    if band:
        values.append(band[1])
    axis_max, step = nice_ceiling(max(values))
    row_h = ROW_H if len(rows) <= MANY_ROWS else ROW_H_MANY
    plot_h = row_h * len(rows)
    bottom_axis = len(rows) > 20
    height = AXIS_H + plot_h + (AXIS_H if bottom_axis else 6)

    def x(value):
        return PLOT_START + (PLOT_END - PLOT_START) * max(0.0, min(float(value), axis_max)) / axis_max

    out = ['<svg viewBox="0 0 %d %d" role="img" aria-label="%s">'
           % (WIDTH, height, esc(caption)),
           "<title>%s</title>" % esc(caption)]
    out.append('<g class="axis">')
    ticks = int(round(axis_max / step))
    for k in range(ticks + 1):
        value = k * step
        px = x(value)
        label = ("%g" % value) + (unit if unit == "%" else "")
        out.append('<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>' % (px, AXIS_H - 4, px, AXIS_H + plot_h))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (px, AXIS_H - 8, esc(label)))
        if bottom_axis:
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (px, AXIS_H + plot_h + 16, esc(label)))
    out.append("</g>")
    if band:
        out.append('<rect class="band" x="%.1f" y="%d" width="%.1f" height="%d"/>'
                   % (x(band[0]), AXIS_H, max(1.0, x(band[1]) - x(band[0])), plot_h))
    for index, row in enumerate(rows):
        out.append(_row(row, AXIS_H + index * row_h, row_h, x))
    for value, cls in lines:
        out.append('<line class="%s" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>' % (cls, x(value), AXIS_H - 2, x(value), AXIS_H + plot_h))
    out.append("</svg>")
    return "\n".join(out)


def _row(row, top, row_h, x):
    text_y = top + row_h // 2 + 4
    parts = ['<g class="row role-%s">' % esc(row.get("role") or "balanced"),
             "<title>%s</title>" % esc(row.get("title") or row["label"])]
    if row.get("role") == "maintenance":
        parts.append('<rect class="stripe" x="0" y="%d" width="%d" height="%d"/>' % (top, WIDTH, row_h))
    parts.append('<text class="name" x="%d" y="%d" text-anchor="end">%s</text>' % (LABEL_END, text_y, esc(short(row["label"]))))
    full, reserve_end = row.get("full"), row.get("reserve_end")
    if full is not None and reserve_end is not None and reserve_end > full:
        parts.append('<rect class="reserve" x="%.1f" y="%d" width="%.1f" height="%d"/>'
                     % (x(full), top + 2, max(1.0, x(reserve_end) - x(full)), row_h - 4))
    # before: a thin bar on top; after: the thick bar below it (alone, when there is no before)
    thin = max(4, row_h * 3 // 11)
    if row.get("before") is not None:
        parts.append('<rect class="b0" x="%d" y="%d" width="%.1f" height="%d"/>' % (PLOT_START, top + 2, x(row["before"]) - PLOT_START, thin))
        y, h = top + 3 + thin, row_h - thin - 6
    else:
        y, h = top + 4, row_h - 8
    if row.get("after") is not None:
        parts.append('<rect class="b1%s" x="%d" y="%d" width="%.1f" height="%d"/>'
                     % (" hot" if row.get("hot") else "", PLOT_START, y, x(row["after"]) - PLOT_START, h))
    if full is not None:
        parts.append('<line class="cap" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>' % (x(full), top + 1, x(full), top + row_h - 1))
    parts.append('<text class="value" x="%d" y="%d">%s</text>' % (VALUE_START, text_y, esc(row.get("value", ""))))
    parts.append("</g>")
    return "".join(parts)


def legend(items):
    """Legend entries (css class of the swatch, text) as HTML."""
    return '<div class="legend">%s</div>' % "".join('<span><i class="%s"></i>%s</span>' % (cls, esc(text)) for cls, text in items)


# -- tables and values ---------------------------------------------------------------------------
def natural_key(name):
    """pve2 before pve10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", str(name))]


def table(headers, rows, classes, numeric=(), css=""):
    head = "".join('<th%s>%s</th>' % (' class="num"' if i in numeric else "", esc(h)) for i, h in enumerate(headers))
    body = "\n".join(tr(row, cls, numeric) for row, cls in zip(rows, classes))
    return '<div class="scroll"><table%s><thead><tr>%s</tr></thead><tbody>\n%s\n</tbody></table></div>' % (
        ' class="%s"' % css if css else "", head, body)


def tr(cells, cls, numeric):
    return '<tr%s>%s</tr>' % (' class="%s"' % cls if cls else "",
                              "".join('<td%s>%s</td>' % (' class="num"' if i in numeric else "", cell) for i, cell in enumerate(cells)))


def details(summary, inner, open_, raw_summary=False):
    return "<details%s><summary>%s</summary>\n%s\n</details>" % (" open" if open_ else "", summary if raw_summary else esc(summary), inner)


def compact(value):
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join("%s=%s" % kv for kv in sorted(value.items(), key=lambda kv: str(kv[0])))
    return value


def count(value, noun):
    return None if value is None else "%s %s%s" % (value, noun, "" if value == 1 else "s")


def as_dict(value):
    return value if isinstance(value, dict) else {}


def as_list(value):
    return value if isinstance(value, list) else []


def num(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def whole(value):
    number = num(value)
    return int(number) if number is not None else 0


def pct(value):
    number = num(value)
    return "–" if number is None else "%.1f" % number


def gib(value):
    number = num(value)
    return "–" if number is None else "%.1f" % (number / GIB)


def plain(value, form="%g"):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return form % value
    if value is None:
        return "–"
    return str(value)
