# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real plans for the plan schema and the plan report (hand-built clusters and clusters served by
the PVE simulator, tools/pvesim, collected through the real client), and a reader of report pages."""

from __future__ import annotations

import os
import sys
from html.parser import HTMLParser

from ansible_collections.proxlb.balancer.plugins.module_utils import collector, placement, planner, pve_api
from ansible_collections.proxlb.balancer.plugins.module_utils.snapshot import HaRule
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import cluster, guest, node, settings

TOOLS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tools"))
TOKEN = ("proxlb", "00000000-0000-4000-8000-000000000001")
# Markup, quotes, entities and a style-closing tag: whatever a guest, tag, pool or node may be called.
HOSTILE = '<script>alert("x")</script>&amp;\'</style><img src=x onerror=alert(1)>'


def _hot(extra=(), **node_kw):
    nodes = [node("pve1", 128, **node_kw), node("pve2", 128), node("pve3", 128)]
    return nodes, [guest(100 + i, "pve1", mem_gib=8, used=0.9) for i in range(10)] + list(extra)


def hand_built_cases():
    """(label, snapshot, settings, planning function) for each option set worth a schema check."""
    nodes, guests = _hot()
    hot = cluster(nodes, guests)
    cases = [
        ("balance", hot, settings(), planner.plan),
        ("balanced", cluster([node("pve1"), node("pve2")], [guest(100, "pve1", 8), guest(101, "pve2", 8)]), settings(), planner.plan),
        ("drain", hot, settings(maintenance_nodes=["pve1"]), planner.plan),
        ("drain only", hot, settings(maintenance_nodes=["pve1"]), lambda s, st: planner.plan(s, st, balance=False)),
        ("max_moves", hot, settings(max_moves=2, balanciness=5), planner.plan),
        ("threshold", hot, settings(memory_threshold=90), planner.plan),
        ("cpu assigned", hot, settings(method="cpu", mode="assigned", cpu_overcommit=2), planner.plan),
        ("reserve", hot, settings(node_resource_reserve={"defaults": {"memory": 8}, "pve2": {"memory": 64}}), planner.plan),
        ("return", hot, settings(), lambda s, st: placement.plan_placements(s, st, {100: "pve2", 101: "pve3", 999: "pve2"})),
    ]
    nodes, guests = _hot([guest(200, "pve1", 4, tags=["plb_pin_pve3"]), guest(201, "pve2", 4, tags=["plb_pin_pve9"]),
                          guest(202, "pve1", 2, tags=["plb_ignore"]), guest(203, "pve1", 2, status="stopped")])
    cases.append(("pins", cluster(nodes, guests), settings(ignore_guests=["nothing-*"]), planner.plan))
    anti = [guest(300 + i, "pve2", 4, tags=["plb_anti_affinity_db"]) for i in range(4)]
    pair = [guest(310, "pve1", 2, tags=["plb_affinity_pair", "plb_anti_affinity_x"]),
            guest(311, "pve3", 2, tags=["plb_affinity_pair", "plb_anti_affinity_x"])]
    nodes, guests = _hot(anti + pair)
    cases.append(("anti-affinity", cluster(nodes, guests), settings(pools={"web": {"type": "anti-affinity"}}), planner.plan))
    no_fit = [node("pve1", 64), node("pve2", 32), node("pve3", 32, status="offline")]
    cases.append(("no_fit", cluster(no_fit, [guest(400, "pve1", 48, used=1.0), guest(401, "pve1", 4)]),
                  settings(maintenance_nodes=["pve1"]), planner.plan))
    ha = [HaRule(rule="db-nodes", type="node-affinity", resources=["vm:500"], nodes={"pve3": 1}, strict=True)]
    nodes, guests = _hot([guest(500, "pve1", 4, ha={"sid": "vm:500", "state": "started"})])
    cases.append(("ha node affinity", cluster(nodes, guests, ha_rules=ha), settings(manage_ha_resources=True), planner.plan))
    return cases


def hostile_plan():
    """A plan whose node, guest, tag and pool names are markup."""
    bad_node = "pve1" + HOSTILE
    nodes = [node(bad_node, 128), node("pve2", 128), node("pve3", 128)]
    guests = [guest(100 + i, bad_node, mem_gib=8, used=0.9, name="web%d%s" % (i, HOSTILE),
                    tags=["plb_anti_affinity_g" + HOSTILE] if i < 3 else [], pool="pool" + HOSTILE if i > 7 else None)
              for i in range(10)]
    guests.append(guest(120, "pve2", 2, name="locked" + HOSTILE, lock="backup" + HOSTILE))
    snap = cluster(nodes, guests)
    st = settings(pools={"pool" + HOSTILE: {"type": "anti-affinity"}}, maintenance_nodes=[bad_node])
    return planner.plan(snap, st).to_dict()


# -- the simulator ---------------------------------------------------------------------------------
def simulator_module():
    if TOOLS_DIR not in sys.path:
        sys.path.insert(0, TOOLS_DIR)
    import pvesim  # pylint: disable=import-outside-toplevel
    return pvesim


def client(sim):
    """The real client to the simulator: token auth, HTTPS, TLS verified against its CA."""
    return pve_api.open_client(pve_api.ConnectionSettings(
        hosts=["127.0.0.1:%d" % sim.port], user="root@pam", token_id=TOKEN[0], token_secret=TOKEN[1],
        validate_certs=True, ca_path=sim.ca_path, timeout=30))


def collect(sim):
    """The simulated cluster as proxlb_cluster_info reads it."""
    return collector.collect(client(sim))


def first_nodes(snapshot, count):
    return sorted(snapshot.nodes)[:count]


# -- reading a rendered report ---------------------------------------------------------------------
# Elements the report is made of; anything else in a page came from data that was not escaped.
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "footer", "nav", "section", "h1", "h2",
                "h3", "p", "a", "div", "span", "b", "i", "dl", "dt", "dd", "ul", "li", "details", "summary", "table", "thead",
                "tbody", "tr", "th", "td", "pre", "svg", "g", "rect", "line", "text"}


class Page(HTMLParser):
    """Tags, attributes, text and table rows of a rendered page, as a browser's parser sees them."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.rows, self.details = [], [], [], [], []
        self.row = self.cell = None
        self.in_style = False
        self.feed(html)
        self.close()
        self.all_text = "\n".join(self.text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        self.in_style = tag == "style"
        if tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag == "details":
            self.details.append(dict(attrs))

    def handle_endtag(self, tag):
        self.in_style = False
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.in_style:
            return
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)

    def has_move(self, move):
        wanted = [str(move["vmid"]), move["name"], move["type"], "%s → %s" % (move["from"], move["to"])]
        return any(row[:4] == wanted for row in self.rows)


def assert_self_contained(html):
    page = Page(html)
    lower = html.lower()
    for needle in ("http://", "https://", "@import", "url(", "<script", "<link", "<iframe", "<img", "<object", "<embed"):
        assert needle not in lower, needle
    assert set(page.tags) <= ALLOWED_TAGS, set(page.tags) - ALLOWED_TAGS
    for tag, name, value in page.attrs:
        assert name not in ("src", "srcset", "action", "formaction", "xlink:href", "background", "poster"), (tag, name)
        assert not name.startswith("on"), (tag, name)
        if name == "href":
            assert value.startswith("#"), value
        assert "//" not in (value or "") or name in ("content", "aria-label"), (tag, name, value)
    return page
