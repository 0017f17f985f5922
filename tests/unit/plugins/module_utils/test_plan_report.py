# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML plan report: escaping, self-containment, completeness, big clusters, old and new plans."""

from __future__ import annotations

import copy
import datetime
import json
import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import plan_report, planner
from ansible_collections.proxlb.balancer.plugins.module_utils.settings import GIB
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import plan_cases
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.plan_cases import HOSTILE, assert_self_contained
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import settings

HAND_BUILT = plan_cases.hand_built_cases()


def demo_plan():
    snap, options, make = plan_cases.hand_built_cases()[2][1:]     # drain: mandatory and balancing moves
    return make(snap, options).to_dict()


def execution_of(plan, failed=(), stopped=False):
    """A proxlb_rebalance result for ``plan`` shaped as its RETURN documents it."""
    moves = []
    for move in plan["moves"]:
        status = "failed" if move["vmid"] in failed else "ok"
        moves.append(dict(move, status=status, upid="UPID:%s:1:qmigrate:%d:" % (move["from"], move["vmid"]), ha_upid=None,
                          duration_s=4.2, error="migration aborted: " + HOSTILE if status == "failed" else None,
                          note=None, final_node=move["from"] if status == "failed" else move["to"]))
    waves = sorted({m["wave"] for m in moves})
    return dict(changed=True, plan=plan, summary=plan.get("summary"), moves=moves, stopped=stopped,
                stop_reason="a migration failed" if stopped else None, replans=0, remaining={"moves": [], "waves": 0},
                waves=[dict(wave=w, moves=sum(1 for m in moves if m["wave"] == w), ok=0, failed=0, skipped=0, not_started=0,
                            replanned=False, duration_s=5.0, longest_s=4.2, api_calls=9) for w in waves],
                nodes_final={n: dict(status="online", guests=3, running=3, load_pct=50.0, mem_bytes=60 * GIB, maxmem_bytes=128 * GIB)
                             for n in plan["nodes"]},
                api_calls=dict(total=40, collect=6, execute=34, by_endpoint={"GET /cluster/resources": 3}), duration_s=12.5)


def maintenance_of(plan):
    evacuated = [dict(vmid=m["vmid"], name=m["name"], **{"from": m["from"], "to": m["to"]}) for m in plan["moves"]]
    result = execution_of(plan)
    result.update(state="drained", nodes={"pve1": dict(status="online", ha_maintenance=False, guests=1, running=1)},
                  evacuated=evacuated, staying=[dict(vmid=190, name="tmpl", node="pve1", reason="template")],
                  blocking=[dict(vmid=170, name="gpu" + HOSTILE, node="pve1", reason="PVE: local resources " + HOSTILE)],
                  nowhere_to_go=[], returned=[], not_returned=[])
    return result


def hostile_everything():
    """The hostile plan with markup in every free text too, and a run and a maintenance result."""
    plan = plan_cases.hostile_plan()
    plan["warnings"].append("warning " + HOSTILE)
    plan["rule_conflicts"].append(dict(kind="kind" + HOSTILE, message="message " + HOSTILE, guests=[100]))
    plan["failures"].append(dict(vmids=[100], node="pve2", reason="reason" + HOSTILE, detail="detail " + HOSTILE))
    plan["left_alone"].append(dict(vmid=101, name="n" + HOSTILE, node="pve2", reason="no_fit", rule="rule" + HOSTILE,
                                   detail="detail " + HOSTILE))
    plan["settings"]["ignore_guests"] = ["veeam-*" + HOSTILE]
    plan["capacity_conflicts"] = [{"node": HOSTILE}]
    return plan, execution_of(plan, failed={plan["moves"][0]["vmid"]}, stopped=True), maintenance_of(plan)


def test_hostile_names_tags_pools_nodes_and_reasons_are_escaped():
    plan, execution, maintenance = hostile_everything()
    html = plan_report.render_plan_html(plan, execution=execution, maintenance=maintenance, title="title " + HOSTILE,
                                        generated_at="time " + HOSTILE)
    page = assert_self_contained(html)
    assert html.count("</style>") == 1 and html.lower().count("<style") == 1
    text = page.all_text
    for prefix in ("pve1", "web0", "plb_anti_affinity_g", "warning ", "message ", "detail ", "kind", "reason", "veeam-*",
                   "PVE: local resources ", "migration aborted: ", "title ", "time ", "locked"):
        assert prefix + HOSTILE in text, prefix
    assert "rule:anti-affinity:pool" + HOSTILE.lower() in text.lower() or "pool" + HOSTILE in text
    for move in plan["moves"]:
        assert page.has_move(move), move


@pytest.mark.parametrize("label, snap, options, make", HAND_BUILT, ids=[case[0] for case in HAND_BUILT])
def test_every_node_and_every_move_is_in_the_page(label, snap, options, make):
    plan = make(snap, options).to_dict()
    page = assert_self_contained(plan_report.render_plan_html(plan))
    for name in plan["nodes"]:
        assert name in page.all_text, (label, name)
        assert [name] == [row[0] for row in page.rows if row and row[0] == name][:1], (label, name)
    for move in plan["moves"]:
        assert page.has_move(move), (label, move)
    for entry in plan["left_alone"]:
        assert any(row[:2] == [str(entry["vmid"]), entry["name"]] for row in page.rows), (label, entry)


def test_a_64_node_6000_guest_plan_renders_with_long_tables_collapsed(tmp_path):
    pytest.importorskip("cryptography")
    pytest.importorskip("proxmoxer")
    pvesim = plan_cases.simulator_module()
    with pvesim.Simulator(scenario=pvesim.generate(64, 6000, 1), port=0, cert_dir=str(tmp_path)) as sim:
        snap = plan_cases.collect(sim)
    plan = planner.plan(snap, settings(maintenance_nodes=plan_cases.first_nodes(snap, 3))).to_dict()
    assert len(plan["nodes"]) == 64 and len(plan["moves"]) > plan_report.OPEN_ROWS
    html = plan_report.render_plan_html(plan)
    page = assert_self_contained(html)
    for move in plan["moves"]:
        assert page.has_move(move), move
    chart_rows = [v for t, k, v in page.attrs if t == "g" and k == "class" and v.startswith("row ")]
    assert len(chart_rows) == 64
    # nodes in natural order in the chart and the node table
    table_nodes = [row[0] for row in page.rows if row and row[0] in plan["nodes"]]
    assert table_nodes == sorted(plan["nodes"], key=plan_report.natural_key)
    moves_details = [d for d in page.details if "open" not in d]
    assert moves_details, "long tables start collapsed"
    assert len(html) < 2 * 1024 * 1024


def test_nodes_sort_naturally():
    assert sorted(["pve10", "pve2", "Pve1", "a"], key=plan_report.natural_key) == ["a", "Pve1", "pve2", "pve10"]


def test_a_run_shows_planned_against_done_with_failures_highlighted():
    plan = demo_plan()
    failed = plan["moves"][0]
    execution = execution_of(plan, failed={failed["vmid"]}, stopped=True)
    execution["moves"].append(dict(plan["moves"][-1], vmid=999, name="replanned-guest", status="ok", wave=plan["moves"][-1]["wave"]))
    html = plan_report.render_plan_html(plan, execution=execution)
    page = assert_self_contained(html)
    failed_rows = [row for row in page.rows if row[:2] == [str(failed["vmid"]), failed["name"]]]
    assert len(failed_rows) == 2 and all(row[6] == "failed" for row in failed_rows)   # failed list and its wave
    assert "still on %s" % failed["from"] in failed_rows[0][8]
    assert '<tr class="failed">' in html
    assert any(row[1:2] == ["replanned-guest"] and "added by re-planning" in row[8] for row in page.rows if len(row) == 9)
    assert "The run stopped early: a migration failed" in page.all_text
    assert "Memory in use per node, GiB, read from the cluster after the run" in page.all_text
    assert "40 request(s) in all" in page.all_text


def test_check_mode_run_and_reserve_lines():
    plan = planner.plan(*plan_cases.hand_built_cases()[7][1:3]).to_dict()     # reserve: defaults 8, pve2 64 GiB
    execution = execution_of(plan)
    for move in execution["moves"]:
        move.update(status="planned", final_node=None)
    html = plan_report.render_plan_html(plan, execution=execution)
    page = assert_self_contained(html)
    assert "as read before planning (check mode)" in page.all_text
    assert html.count('<rect class="reserve"') == 2 * len(plan["nodes"])    # balanced-load chart and memory chart
    assert "defaults: memory 8; pve2: memory 64" in page.all_text
    assert any(row[:1] == ["pve2"] and row[-1] == "64 GiB" for row in page.rows)


def test_a_maintenance_result_shows_drained_nodes_evacuated_and_blocking_guests():
    plan = demo_plan()
    result = maintenance_of(plan)
    html = plan_report.render_result_html(result)
    page = assert_self_contained(html)
    assert "Maintenance: drained" in page.all_text and "Maintenance: test" in page.all_text
    assert any(row == ["pve1", "online", "False", "1", "1"] for row in page.rows)
    for entry in result["evacuated"]:
        assert [str(entry["vmid"]), entry["name"], entry["from"], entry["to"]] in page.rows
    assert ["170", "gpu" + HOSTILE, "pve1", "PVE: local resources " + HOSTILE] in page.rows
    assert "Blocking the maintenance: 1 guest(s)" in page.all_text
    assert [row[6] for row in page.rows if len(row) == 9 and row[0] == str(plan["moves"][0]["vmid"])] == ["ok"]


def test_module_results_pick_their_parts():
    plan = demo_plan()
    assert plan_report.render_result_html({"plan": plan, "summary": plan["summary"]}) == plan_report.render_plan_html(plan)
    assert plan_report.render_result_html(plan) == plan_report.render_plan_html(plan)
    run = execution_of(plan)
    assert plan_report.render_result_html(run) == plan_report.render_plan_html(plan, execution=run)


def test_same_input_same_page_and_the_time_comes_from_the_caller():
    plan = demo_plan()
    first, second = plan_report.render_plan_html(plan), plan_report.render_plan_html(copy.deepcopy(plan))
    assert first == second and "time not recorded" in first
    when = datetime.datetime(2026, 12, 2, 18, 0, tzinfo=datetime.timezone.utc)
    assert "2026-12-02T18:00:00+00:00" in plan_report.render_plan_html(plan, generated_at=when)
    assert "after the change window" in plan_report.render_plan_html(plan, generated_at="after the change window")
    assert "Balancing plan: test" in first and "Custom" in plan_report.render_plan_html(plan, title="Custom")


def test_older_plans_with_keys_missing_still_render():
    plan = demo_plan()
    for key in list(plan):
        older = {k: v for k, v in plan.items() if k != key}
        page = assert_self_contained(plan_report.render_plan_html(older))
        for move in older.get("moves", []):
            assert page.has_move(move), key
    for odd in ({}, None, {"moves": "none", "nodes": [], "metrics": 3, "settings": None, "left_alone": {}},
                {"moves": [{"vmid": 1}], "nodes": {"n1": {}}}, {"nodes": {"n1": {"before_pct": "x", "after_pct": None}}}):
        assert_self_contained(plan_report.render_plan_html(odd, execution={"moves": [{"status": "ok"}], "waves": "x"},
                                                           maintenance={"state": "active", "returned": [{"vmid": 1}]}))


def test_newer_plan_keys_are_shown_as_data():
    plan = demo_plan()
    plan["capacity_conflicts"] = [{"node": "pve1", "detail": "over by 2 GiB " + HOSTILE}]
    plan["timing"] = {"plan_s": 0.25}
    plan["format"] = "proxlb.balancer.plan/1"
    page = assert_self_contained(plan_report.render_plan_html(plan))
    assert "More plan data" in page.all_text
    assert "capacity_conflicts" in page.all_text and json.dumps("over by 2 GiB " + HOSTILE) in page.all_text
    assert '"plan_s": 0.25' in page.all_text
    assert "plan format proxlb.balancer.plan/1" in page.all_text
