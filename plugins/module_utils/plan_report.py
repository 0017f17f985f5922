# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A plan (and what became of it) as one self-contained HTML page for people to review.

Pure: data in, one string out. No I/O, no clock, no JavaScript, nothing fetched: the style
sheet and the charts (inline SVG) are in the page, so it can be attached to an approval step or
a change record and opened anywhere, printed, or read on a phone.

Use from a module (the caller writes the string, only when it changed)::

    from ansible_collections.proxlb.balancer.plugins.module_utils import plan_report
    from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import write_if_changed

    html = plan_report.render_result_html(result)              # result of proxlb_plan/_rebalance/_maintenance
    changed = write_if_changed(module, html, module.params["report"], option="report")

or with the parts: ``render_plan_html(plan, execution=None, maintenance=None, title=None,
generated_at=None)`` where ``plan`` is the plan dict (proxlb_plan's ``plan``, the JSON file of
``dest``), ``execution`` a proxlb_rebalance result (``moves`` with ``status``, ``waves``,
``nodes_final``, ``api_calls``, ...), ``maintenance`` a proxlb_maintenance result (``state``,
``nodes``, ``evacuated``, ``blocking``, ...; it is also shown as the execution when none is given).

The same input always gives the same page; ``generated_at`` (a string or anything with
``isoformat()``) is the only time shown, so a report only changes when the plan does unless
the caller passes the current time. Missing keys (older plans) leave their part out; keys this
page does not know (newer plans) are listed at the end as data. Every value from the cluster
is escaped.
"""

from __future__ import annotations

import json

from ansible_collections.proxlb.balancer.plugins.module_utils.plan_report_parts import (
    CSS, as_dict, as_list, bar_chart, compact, count, details, esc, gib, legend, natural_key, num, pct, plain, table, tr, whole)
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB

OPEN_ROWS = 40        # tables with more rows start collapsed
OPEN_NODES = 16       # node tables with more nodes start collapsed
RESOURCES = {"memory": ("Memory", "GiB"), "cpu": ("CPU", "cores"), "disk": ("Local disk", "GiB")}
KNOWN_KEYS = {"format", "method", "mode", "settings", "cluster", "trigger", "stop_reason", "nodes", "metrics", "moves",
              "waves", "moves_count", "mandatory_count", "mem_moved_bytes", "left_alone", "failures", "unsequenced",
              "rule_conflicts", "warnings", "summary", "generated_at"}
STOP_WORDS = {
    "target_reached": "Balancing stopped at its target: the spread is within half of balanciness.",
    "no_gain": "Balancing stopped: no further move pays for itself.",
    "max_moves": "Balancing stopped at the move budget (max_moves).",
    "balanced": "The spread ends within balanciness.",
    "below_threshold": "The hottest node ends below its threshold.",
    "fewer_than_two_nodes": "Fewer than two nodes can take guests.",
    "balancing_off": "Only mandatory moves were planned (no balancing).",
    "placements": "Guests go back to the nodes they came from.",
}
TRIGGER_WORDS = {
    "spread_above_balanciness": "Balancing started: the spread of %(spread)s pp was above balanciness (%(balanciness)s pp).",
    "balanced": "No balancing needed: the spread of %(spread)s pp was within balanciness (%(balanciness)s pp).",
    "below_threshold": "No balancing needed: the hottest node at %(max)s %% was below its threshold (%(threshold)s %%).",
}
STATUS_ORDER = ("ok", "failed", "skipped", "not_started", "planned")


def render_result_html(result, title=None, generated_at=None):
    """The page for a module result: proxlb_plan (``plan``), proxlb_rebalance or proxlb_maintenance."""
    result = as_dict(result)
    plan = as_dict(result.get("plan")) or (result if "nodes" in result and "moves" in result and "state" not in result else {})
    execution = result if as_list(result.get("moves")) and any("status" in as_dict(m) for m in result["moves"]) else None
    maintenance = result if "state" in result and ("evacuated" in result or "returned" in result) else None
    return render_plan_html(plan, execution=execution, maintenance=maintenance, title=title, generated_at=generated_at)


def render_plan_html(plan, execution=None, maintenance=None, title=None, generated_at=None):
    """One HTML document for ``plan``, optionally with the run (``execution``) and a maintenance result."""
    plan = as_dict(plan)
    maintenance = as_dict(maintenance) or None
    if execution is None and maintenance and as_list(maintenance.get("moves")):
        execution = maintenance
    execution = as_dict(execution) or None
    cluster = as_dict(plan.get("cluster"))
    if hasattr(generated_at, "isoformat"):
        generated_at = generated_at.isoformat()
    generated_at = generated_at or plan.get("generated_at")
    kind = "Maintenance" if maintenance else "Rebalance run" if execution else "Balancing plan"
    title = title or "%s: %s" % (kind, cluster.get("cluster_name") or "cluster")
    body = [_header(plan, execution, maintenance, title, generated_at), _loads(plan, execution),
            _moves(plan, execution), _maintenance(maintenance), _left_alone(plan), _problems(plan),
            _quality(plan), _api_calls(plan, execution), _extra(plan)]
    return "".join([
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        "<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n" % (esc(title), CSS),
        "\n".join(part for part in body if part),
        "\n<footer>proxlb.balancer plan report%s</footer>\n</main>\n</body>\n</html>\n"
        % (" &middot; plan format %s" % esc(plan["format"]) if plan.get("format") else ""),
    ])


# -- parts of the page ---------------------------------------------------------------------------
def _header(plan, execution, maintenance, title, generated_at):
    cluster = as_dict(plan.get("cluster"))
    facts = [("PVE %s" % cluster["pve_version"]) if cluster.get("pve_version") else None,
             count(cluster.get("nodes"), "node"), count(cluster.get("guests"), "guest"),
             str(generated_at) if generated_at else "time not recorded"]
    before, after = as_dict(as_dict(plan.get("metrics")).get("before")), as_dict(as_dict(plan.get("metrics")).get("after"))
    moves = as_list(plan.get("moves"))
    mandatory = plan.get("mandatory_count", sum(1 for m in moves if as_dict(m).get("mandatory")))
    cards = [("Moves", len(moves), "%s mandatory" % mandatory, ""),
             ("Waves", plan.get("waves", "–"), "", ""),
             ("Memory moved", "%s GiB" % gib(plan.get("mem_moved_bytes", sum(num(as_dict(m).get("mem_bytes")) or 0 for m in moves))), "", ""),
             ("Spread", "%s → %s" % (pct(before.get("spread_pp")), pct(after.get("spread_pp"))), "percentage points", ""),
             ("Hottest node", "%s → %s" % (pct(before.get("max_pct")), pct(after.get("max_pct"))), "% of capacity", "")]
    if execution:
        counts = _status_counts(execution)
        bad = counts.get("failed", 0) or execution.get("stopped")
        cards.append(("Run", ", ".join("%d %s" % (counts[s], s.replace("_", " ")) for s in STATUS_ORDER if counts.get(s)) or "nothing ran",
                      "stopped: %s" % execution.get("stop_reason") if execution.get("stopped") else "", "bad" if bad else "good"))
    out = ["<header>", "<h1>%s</h1>" % esc(title), '<p class="sub">%s</p>' % " &middot; ".join(esc(f) if f else "" for f in facts if f)]
    out.append('<div class="cards">%s</div>' % "".join(
        '<div class="card %s"><span>%s</span><b>%s</b><span>%s</span></div>' % (cls, esc(label), esc(value), esc(note))
        for label, value, note, cls in cards))
    trigger, stop = as_dict(plan.get("trigger")), plan.get("stop_reason")
    words = []
    if trigger.get("reason") in TRIGGER_WORDS:
        words.append(TRIGGER_WORDS[trigger["reason"]] % dict(
            spread=pct(trigger.get("spread_pp")), balanciness=plain(trigger.get("balanciness")), max=pct(trigger.get("max_pct")),
            threshold=plain(trigger.get("threshold"))))
    if stop and stop != trigger.get("reason") or not words:
        words.append(STOP_WORDS.get(stop, "Planning stopped: %s." % stop) if stop else "")
    if any(words):
        out.append('<p class="banner %s">%s</p>' % ("good" if stop in ("target_reached", "balanced") else "", esc(" ".join(w for w in words if w))))
    if execution and execution.get("stopped"):
        out.append('<p class="banner bad">The run stopped early: %s</p>' % esc(execution.get("stop_reason") or "no reason given"))
    problems = len(as_list(plan.get("failures"))) + len(as_list(plan.get("rule_conflicts"))) + len(as_list(plan.get("unsequenced")))
    if problems:
        out.append('<p class="banner bad"><a href="#problems">%d problem(s) need a look</a>: failed mandatory moves, rule conflicts'
                   ' or moves that could not be ordered.</p>' % problems)
    out.append("<nav>%s</nav>" % "".join('<a href="#%s">%s</a>' % pair for pair in (
        ("settings", "Settings"), ("loads", "Node loads"), ("moves", "Moves"), ("maintenance", "Maintenance") if maintenance else ("", ""),
        ("left-alone", "Left alone"), ("problems", "Rules and warnings"), ("quality", "Quality"), ("api", "API calls")) if pair[0]))
    out.append("</header>")
    out.append(_settings(plan, maintenance))
    return "\n".join(out)


def _settings(plan, maintenance):
    settings = as_dict(plan.get("settings"))
    method, mode = plan.get("method", settings.get("method")), plan.get("mode", settings.get("mode"))
    items = [("method", method), ("mode", mode),
             ("balanciness", "%s pp (plans to %s pp)" % (plain(settings.get("balanciness")), plain(settings.get("target_spread")))
              if "balanciness" in settings else None)]
    for resource in RESOURCES:
        key = resource + "_threshold"
        if key in settings:
            items.append((key, "%s %%" % plain(settings[key]) if settings[key] is not None else "none"))
    items.append(("maintenance_nodes", ", ".join(map(str, as_list(settings.get("maintenance_nodes")))) or "none"))
    if maintenance:
        drained = sorted(map(str, as_dict(maintenance.get("nodes"))), key=natural_key)
        items.append(("maintenance", "%s: %s" % (maintenance.get("state", "?"), ", ".join(drained))))
    items.append(("node_resource_reserve", _reserve_text(settings.get("node_resource_reserve"))))
    shown = {"method", "mode", "balanciness", "target_spread", "maintenance_nodes", "node_resource_reserve"}
    shown.update(r + "_threshold" for r in RESOURCES)
    for key in sorted(settings):
        if key not in shown:
            value = settings[key]
            if isinstance(value, list):
                value = ", ".join(map(str, value)) or "none"
            elif isinstance(value, dict):
                value = "; ".join("%s: %s" % (k, compact(v)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) or "none"
            items.append((key, plain(value)))
    rows = "".join("<div><dt>%s</dt><dd>%s</dd></div>" % (esc(k), esc(v)) for k, v in items if v is not None)
    return '<section id="settings"><h2>Settings</h2><dl class="settings">%s</dl></section>' % rows


def _loads(plan, execution):
    nodes = as_dict(plan.get("nodes"))
    settings = as_dict(plan.get("settings"))
    method = plan.get("method", settings.get("method")) or "memory"
    name, unit = RESOURCES.get(method, (str(method), ""))
    final = as_dict(as_dict(execution).get("nodes_final"))
    reserves = settings.get("node_resource_reserve")
    threshold = num(settings.get("%s_threshold" % method))
    out = ['<section id="loads"><h2>Node loads</h2>']
    if nodes:
        rows = []
        for node in sorted(nodes, key=natural_key):
            info = as_dict(nodes[node])
            after = num(info.get("after_pct"))
            reserve_end = None
            maxmem = num(as_dict(final.get(node)).get("maxmem_bytes"))
            reserve = _reserve(reserves, node, method)
            if method == "memory" and maxmem and reserve and maxmem > reserve * GIB:
                reserve_end = maxmem * 100.0 / (maxmem - reserve * GIB)
            rows.append(dict(label=node, title="%s (%s)" % (node, info.get("role", "?")), role=info.get("role"),
                             before=num(info.get("before_pct")), after=after, full=100.0, reserve_end=reserve_end,
                             hot=after is not None and (after > threshold if threshold is not None else after > 100.0),
                             value="%s → %s %%" % (pct(info.get("before_pct")), pct(after))))
        after_stats = as_dict(as_dict(plan.get("metrics")).get("after"))
        balanciness, mean = num(settings.get("balanciness")), num(after_stats.get("mean_pct"))
        band = (mean - balanciness / 2.0, mean + balanciness / 2.0) if balanciness is not None and mean is not None else None
        lines = [(threshold, "thr")] if threshold is not None else []
        caption = "%s load per node before and after the plan, percent of capacity after reserve (%s)" % (name, plan.get("mode", "used"))
        out.append("<h3>%s</h3>" % esc(caption))
        out.append('<div class="chart">%s</div>' % bar_chart(rows, "%", lines, band, caption))
        items = [("before", "before"), ("after", "after"), ("hot", "after, above %s" % ("threshold" if threshold is not None else "capacity")),
                 ("cap", "capacity after reserve (100 %)")]
        if any(r["reserve_end"] for r in rows):
            items.append(("reserve", "reserve kept back (node_resource_reserve)"))
        if threshold is not None:
            items.append(("thr", "%s_threshold %g %%" % (method, threshold)))
        if band:
            items.append(("band", "balanciness band: mean after ± %g/2 pp" % balanciness))
        out.append(legend(items))
        out.append(_node_table(nodes, reserves, method, unit))
    else:
        out.append("<p>The plan has no per-node loads.</p>")
    if final and any("maxmem_bytes" in as_dict(v) for v in final.values()):
        out.append(_memory_chart(final, reserves, execution))
    out.append("</section>")
    return "\n".join(out)


def _node_table(nodes, reserves, method, unit):
    rows, classes = [], []
    for node in sorted(nodes, key=natural_key):
        info = as_dict(nodes[node])
        before, after = num(info.get("before_pct")), num(info.get("after_pct"))
        reserve = _reserve(reserves, node, method)
        rows.append([esc(node), '<span class="tag %s">%s</span>' % (esc(info.get("role")), esc(info.get("role", "?"))),
                     pct(before), pct(after), "%+.1f" % (after - before) if before is not None and after is not None else "–",
                     esc(info.get("moves_in", "–")), esc(info.get("moves_out", "–")),
                     "%s %s" % (plain(reserve), unit) if reserve else "–"])
        classes.append("")
    listing = table(["Node", "Role", "Before %", "After %", "Change pp", "In", "Out", "Reserve"], rows, classes, numeric={2, 3, 4, 5, 6})
    return details("Per node: %d node(s)" % len(nodes), listing, len(nodes) <= OPEN_NODES)


def _memory_chart(final, reserves, execution):
    planned = {as_dict(m).get("status") for m in as_list(execution.get("moves"))} == {"planned"}
    caption = "Memory in use per node, GiB, %s" % ("as read before planning (check mode)" if planned else "read from the cluster after the run")
    rows = []
    for node in sorted(final, key=natural_key):
        info = as_dict(final[node])
        maxmem, used = num(info.get("maxmem_bytes")), num(info.get("mem_bytes"))
        if maxmem is None:
            continue
        reserve = (_reserve(reserves, node, "memory") or 0.0) * GIB
        rows.append(dict(label=node, title="%s (%s)" % (node, info.get("status", "?")), role="offline" if info.get("status") not in (None, "online") else "",
                         before=None, after=(used or 0) / GIB, full=max(0.0, maxmem - reserve) / GIB,
                         reserve_end=maxmem / GIB if reserve else None, hot=(used or 0) > maxmem - reserve,
                         value="%s / %s GiB" % (gib(used), gib(maxmem))))
    items = [("after", "memory in use"), ("hot", "in use, into the reserve"), ("cap", "capacity: memory less reserve")]
    if any(r["reserve_end"] for r in rows):
        items.append(("reserve", "reserve (node_resource_reserve)"))
    return "<h3>%s</h3>\n<div class=\"chart\">%s</div>\n%s" % (esc(caption), bar_chart(rows, "GiB", caption=caption), legend(items))


def _moves(plan, execution):
    moves = [as_dict(m) for m in as_list(plan.get("moves"))]
    outcomes = {}
    for outcome in as_list(as_dict(execution).get("moves")):
        outcomes.setdefault(as_dict(outcome).get("vmid"), as_dict(outcome))
    waves = {}
    for move in moves:
        waves.setdefault(whole(move.get("wave")), []).append((move, outcomes.pop(move.get("vmid"), None)))
    for outcome in outcomes.values():   # moves the run added by re-planning
        waves.setdefault(whole(outcome.get("wave")), []).append((None, outcome))
    entries = [entry for wave in sorted(waves) for entry in waves[wave]]
    out = ['<section id="moves"><h2>Moves</h2>']
    if not entries:
        out.append("<p>No moves. %s</p>" % esc(STOP_WORDS.get(plan.get("stop_reason"), plan.get("stop_reason") or "")))
    else:
        out.append("<p>%s</p>" % esc(_moves_line(entries, len(waves))))
        headers = ["VMID", "Guest", "Type", "From → to", "GiB", "Reason"] + (["Status", "Seconds", "Detail"] if execution else [])
        failed = [(m, o) for m, o in entries if o and o.get("status") == "failed"]
        if failed:
            out.append("<h3>Failed migrations</h3>")
            out.append(table(headers, [_move_row(m or o, o, True) for m, o in failed], ["failed"] * len(failed),
                             numeric={0, 4, 7}, css="moves run"))
        # one table, a tbody per wave, so that columns line up across waves
        bodies = []
        for wave in sorted(waves):
            rows = "\n".join(tr(_move_row(m or o, o, execution is not None),
                                ("extra " if m is None else "") + esc(as_dict(o).get("status", "")), {0, 4, 7})
                             for m, o in waves[wave])
            bodies.append('<tbody><tr class="wave"><th colspan="%d">Wave %s <span class="muted">%s</span></th></tr>\n%s</tbody>'
                          % (len(headers), wave or "?", esc(_moves_line(waves[wave])), rows))
        listing = '<div class="scroll"><table class="moves%s"><thead><tr>%s</tr></thead>\n%s</table></div>' % (
            " run" if execution else "", "".join('<th%s>%s</th>' % (' class="num"' if i in (0, 4, 7) else "", esc(h))
                                                 for i, h in enumerate(headers)), "\n".join(bodies))
        out.append(details("All moves by wave: %d move(s) in %d wave(s)" % (len(entries), len(waves)), listing, len(entries) <= OPEN_ROWS))
    if execution:
        out.append(_waves_table(execution))
    out.append("</section>")
    return "\n".join(out)


def _moves_line(entries, wave_count=None):
    """'12 move(s) in 3 wave(s), 48.0 GiB, 2 mandatory, 11 ok, 1 failed'"""
    moved_gib = sum(num((m or o).get("mem_bytes")) or 0 for m, o in entries) / GIB
    counts = {}
    for _move, outcome in entries:
        if outcome:
            counts[outcome.get("status")] = counts.get(outcome.get("status"), 0) + 1
    mandatory = sum(1 for m, o in entries if (m or o).get("mandatory"))
    text = "%d move(s)%s, %.1f GiB, %d mandatory" % (len(entries), " in %d wave(s)" % wave_count if wave_count else "", moved_gib, mandatory)
    return text + "".join(", %d %s" % (counts[s], s.replace("_", " ")) for s in STATUS_ORDER if counts.get(s))


def _move_row(move, outcome, with_outcome):
    tags = ' <span class="tag mandatory">mandatory</span>' if move.get("mandatory") else ""
    row = [esc(move.get("vmid")), esc(move.get("name")), esc(move.get("type")),
           "%s → %s" % (esc(move.get("from")), esc(move.get("to"))), gib(move.get("mem_bytes")),
           esc(move.get("reason")) + tags]
    if with_outcome:
        outcome = outcome or {}
        status = outcome.get("status", "not in the run")
        detail = [str(outcome[k]) for k in ("error", "note") if outcome.get(k)]
        if outcome.get("final_node") and outcome["final_node"] != move.get("to"):
            detail.append("%s on %s" % ("still" if outcome["final_node"] == move.get("from") else "now", outcome["final_node"]))
        if move is outcome:
            detail.append("added by re-planning during the run")
        row += ['<span class="tag %s">%s</span>' % (esc(status), esc(status)),
                "%.1f" % outcome["duration_s"] if num(outcome.get("duration_s")) is not None else "–", esc("; ".join(detail))]
    return row


def _waves_table(execution):
    keys = ("wave", "moves", "ok", "failed", "skipped", "not_started", "replanned", "duration_s", "longest_s", "api_calls")
    waves = [as_dict(w) for w in as_list(execution.get("waves"))]
    rows = [[esc(plain(w.get(k))) for k in keys] for w in waves]
    classes = ["failed" if num(w.get("failed")) else "" for w in waves]
    out = ["<h3>Waves as run</h3>", table([k.replace("_", " ") for k in keys], rows, classes, numeric=set(range(10)) - {6})
           if waves else "<p>No wave ran.</p>"]
    remaining = as_list(as_dict(execution.get("remaining")).get("moves"))
    if remaining:
        out.append('<p class="banner">%d move(s) left for a later run (max_waves).</p>' % len(remaining))
    return "\n".join(out)


def _maintenance(maintenance):
    if not maintenance:
        return ""
    nodes = as_dict(maintenance.get("nodes"))
    out = ['<section id="maintenance"><h2>Maintenance: %s</h2>' % esc(maintenance.get("state", ""))]
    rows = [[esc(n), esc(as_dict(nodes[n]).get("status")), esc(as_dict(nodes[n]).get("ha_maintenance")),
             esc(as_dict(nodes[n]).get("guests")), esc(as_dict(nodes[n]).get("running"))] for n in sorted(nodes, key=natural_key)]
    out.append(table(["Node", "Status", "HA maintenance", "Guests", "Running"], rows, [""] * len(rows), numeric={3, 4}))
    parts = (("evacuated", "Evacuated", ("vmid", "name", "from", "to"), ""),
             ("returned", "Returned", ("vmid", "name", "from", "to"), ""),
             ("nowhere_to_go", "Nowhere to go", ("vmid", "name", "node", "rule", "detail"), "failed"),
             ("blocking", "Blocking the maintenance", ("vmid", "name", "node", "reason"), "failed"),
             ("not_returned", "Not returned", ("vmid", "name", "node", "wanted", "reason"), "skipped"),
             ("staying", "Staying (harmless)", ("vmid", "name", "node", "reason"), ""))
    for key, label, columns, cls in parts:
        entries = [as_dict(e) for e in as_list(maintenance.get(key))]
        if not entries:
            continue
        rows = [[esc(e.get(c)) for c in columns] for e in entries]
        listing = table([c.replace("_", " ") for c in columns], rows, [cls] * len(rows), numeric={0})
        out.append(details("%s: %d guest(s)" % (label, len(entries)), listing, len(entries) <= OPEN_ROWS or bool(cls)))
    out.append("</section>")
    return "\n".join(out)


def _left_alone(plan):
    entries = [as_dict(e) for e in as_list(plan.get("left_alone"))]
    out = ['<section id="left-alone"><h2>Left alone</h2>']
    if not entries:
        out.append("<p>No guest was held back.</p>" if "left_alone" in plan else "<p>The plan does not list guests left alone.</p>")
    else:
        counts = {}
        for entry in entries:
            counts[entry.get("reason")] = counts.get(entry.get("reason"), 0) + 1
        out.append("<p>%s</p>" % esc(", ".join("%d %s" % (n, r) for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))))))
        rows = [[esc(e.get("vmid")), esc(e.get("name")), esc(e.get("node")), esc(e.get("reason")),
                 esc(": ".join(str(e[k]) for k in ("rule", "detail") if e.get(k)))] for e in entries]
        classes = ["failed" if e.get("reason") == "no_fit" else "" for e in entries]
        listing = table(["VMID", "Guest", "Node", "Reason", "Detail"], rows, classes, numeric={0})
        out.append(details("%d guest(s) stay where they are" % len(entries), listing, len(entries) <= OPEN_ROWS))
    out.append("</section>")
    return "\n".join(out)


def _problems(plan):
    out = ['<section id="problems"><h2>Rules and warnings</h2>']
    conflicts = [as_dict(c) for c in as_list(plan.get("rule_conflicts"))]
    failures = [as_dict(f) for f in as_list(plan.get("failures"))]
    unsequenced = [as_dict(m) for m in as_list(plan.get("unsequenced"))]
    warnings = as_list(plan.get("warnings"))
    if conflicts:
        out.append("<h3>Rule conflicts</h3>")
        out.append(table(["Kind", "Message", "Guests"], [[esc(c.get("kind")), esc(c.get("message")), esc(compact(c.get("guests")))]
                                                         for c in conflicts], ["failed"] * len(conflicts)))
    if failures:
        out.append("<h3>Mandatory moves that could not be planned</h3>")
        out.append(table(["Reason", "Node", "Guests", "Detail"],
                         [[esc(f.get("reason")), esc(f.get("node")), esc(compact(f.get("vmids"))), esc(f.get("detail"))] for f in failures],
                         ["failed"] * len(failures)))
    if unsequenced:
        out.append("<h3>Moves no order could run safely (not planned)</h3>")
        out.append(table(["VMID", "Guest", "From → to", "Reason"], [[esc(m.get("vmid")), esc(m.get("name")), "%s → %s" % (
            esc(m.get("from")), esc(m.get("to"))), esc(m.get("reason"))] for m in unsequenced], ["skipped"] * len(unsequenced), numeric={0}))
    if warnings:
        out.append("<h3>Warnings</h3>")
        out.append('<ul class="plain">%s</ul>' % "".join("<li>%s</li>" % esc(w) for w in warnings))
    if len(out) == 1:
        out.append("<p>No rule conflicts, failed mandatory moves or warnings.</p>")
    out.append("</section>")
    return "\n".join(out)


def _quality(plan):
    metrics = as_dict(plan.get("metrics"))
    if not metrics:
        return ""
    before, after = as_dict(metrics.get("before")), as_dict(metrics.get("after"))
    bound, gap = as_dict(metrics.get("lower_bound")), as_dict(metrics.get("gap"))
    rows = [["before"] + [pct(before.get(k)) for k in ("spread_pp", "max_pct", "min_pct", "mean_pct")] + [plain(before.get("cv"), "%.3f")],
            ["after"] + [pct(after.get(k)) for k in ("spread_pp", "max_pct", "min_pct", "mean_pct")] + [plain(after.get("cv"), "%.3f")]]
    if bound:
        rows.append(["lower bound (%s)" % esc(bound.get("binding", "?")), pct(bound.get("spread_pp")), pct(bound.get("max_pct")), "–",
                     pct(bound.get("average_pct")), "–"])
    if gap:
        rows.append(["gap to the bound", pct(gap.get("spread_pp")), pct(gap.get("max_pp")), "–", "–", "–"])
    out = ['<section id="quality"><h2>Quality</h2>']
    if bound:
        out.append("<p>No plan can bring the spread below %s pp or the hottest node below %s %% (bound set by %s); this plan is %s pp"
                   " from the spread bound and %s pp from the hottest-node bound.</p>"
                   % (pct(bound.get("spread_pp")), pct(bound.get("max_pct")), esc(bound.get("binding", "?")),
                      pct(gap.get("spread_pp")), pct(gap.get("max_pp"))))
    out.append(table(["", "Spread pp", "Max %", "Min %", "Mean %", "CV"], rows, [""] * len(rows), numeric={1, 2, 3, 4, 5}))
    out.append("</section>")
    return "\n".join(out)


def _api_calls(plan, execution):
    cluster = as_dict(plan.get("cluster"))
    out = ['<section id="api"><h2>API calls</h2>']
    if "api_calls" in cluster:
        out.append("<p>Reading the cluster for the plan: %s request(s).</p>" % esc(cluster["api_calls"]))
    calls = as_dict(execution).get("api_calls")
    if isinstance(calls, dict):
        out.append("<p>The run: %s request(s) in all, %s to read and check the cluster, %s while migrating.</p>"
                   % (esc(calls.get("total", "–")), esc(calls.get("collect", "–")), esc(calls.get("execute", "–"))))
        endpoints = as_dict(calls.get("by_endpoint"))
        if endpoints:
            rows = [[esc(k), esc(v)] for k, v in sorted(endpoints.items(), key=lambda kv: (-(num(kv[1]) or 0), str(kv[0])))]
            out.append(details("By endpoint: %d" % len(rows), table(["Endpoint", "Requests"], rows, [""] * len(rows), numeric={1}), False))
    elif calls is not None:
        out.append("<p>The run: %s request(s).</p>" % esc(calls))
    if execution and num(execution.get("duration_s")) is not None:
        out.append("<p>Time spent migrating: %.1f s; plan recomputed %s time(s) during the run.</p>"
                   % (num(execution["duration_s"]), esc(execution.get("replans", 0))))
    if len(out) == 1:
        return ""
    out.append("</section>")
    return "\n".join(out)


def _extra(plan):
    extra = sorted(k for k in plan if k not in KNOWN_KEYS)
    if not extra:
        return ""
    out = ['<section id="more"><h2>More plan data</h2><p class="muted">Parts of the plan this report does not lay out.</p>']
    for key in extra:
        text = json.dumps(plan[key], indent=1, sort_keys=True, default=str)
        out.append(details(str(key), "<pre>%s</pre>" % esc(text), len(text) <= 2000))
    out.append("</section>")
    return "\n".join(out)


# -- helpers -------------------------------------------------------------------------------------
def _status_counts(execution):
    counts = {}
    for move in as_list(execution.get("moves")):
        status = as_dict(move).get("status")
        counts[status] = counts.get(status, 0) + 1
    return counts


def _reserve(reserves, node, resource):
    """The reserve of ``resource`` on ``node`` from node_resource_reserve as the plan echoes it (node value wins)."""
    reserves = as_dict(reserves)
    for scope in (as_dict(reserves.get(node)), as_dict(reserves.get("defaults"))):
        if resource in scope:
            return num(scope[resource])
    return None


def _reserve_text(reserves):
    reserves = as_dict(reserves)
    if not reserves:
        return "none"
    return "; ".join("%s: %s" % (scope, ", ".join("%s %s" % (r, plain(v)) for r, v in sorted(as_dict(reserves[scope]).items())))
                     for scope in sorted(reserves, key=lambda s: (s != "defaults", natural_key(s))))
