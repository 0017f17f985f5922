# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/plan-schema.json against real plans: hand-built clusters and simulated ones, many option sets."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils import placement, planner
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils import plan_cases
from ansible_collections.proxlb.balancer.tests.unit.plugins.module_utils.cluster_builder import settings

jsonschema = pytest.importorskip("jsonschema")

SCHEMA_PATH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "plan-schema.json"))
with open(SCHEMA_PATH) as _handle:
    SCHEMA = json.load(_handle)
FORMAT = SCHEMA["properties"]["format"]["const"]
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
HAND_BUILT = plan_cases.hand_built_cases()

# Option sets for simulated clusters; a callable gets the snapshot and returns the options.
SIMULATED_OPTIONS = (
    ("defaults", lambda snap: {}),
    ("drain two nodes", lambda snap: {"maintenance_nodes": plan_cases.first_nodes(snap, 2)}),
    ("tight", lambda snap: {"balanciness": 2, "max_moves": 5, "max_moves_per_node": 2}),
    ("cpu assigned", lambda snap: {"method": "cpu", "mode": "assigned"}),
    ("reserve and threshold", lambda snap: {"memory_threshold": 50, "node_resource_reserve": {"defaults": {"memory": 16}}}),
    ("pools and ignores", lambda snap: {"pools": {name: {"type": "anti-affinity"} for name in sorted(snap.pools)[:2]},
                                        "ignore_nodes": plan_cases.first_nodes(snap, 1)[-1:], "ignore_guests": ["*1"]}),
)


def as_written(plan_dict):
    """The plan as a module returns it and dest writes it: JSON, with its format."""
    data = json.loads(json.dumps(plan_dict, sort_keys=True))
    data.setdefault("format", FORMAT)   # plans from before format 1 carry no format key
    return data


def errors(data):
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in VALIDATOR.iter_errors(data)]


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "format" in SCHEMA["required"]


@pytest.mark.parametrize("label, snap, options, make", HAND_BUILT, ids=[c[0] for c in HAND_BUILT])
def test_hand_built_plans_match_the_schema(label, snap, options, make):
    data = as_written(make(snap, options).to_dict())
    assert errors(data) == [], label


def test_the_hand_built_cases_cover_what_the_schema_describes():
    plans = [as_written(make(snap, options).to_dict()) for _label, snap, options, make in plan_cases.hand_built_cases()]
    reasons = {m["reason"].split(":")[0] for p in plans for m in p["moves"]}
    assert {"balance", "maintenance", "rule", "return"} <= reasons
    assert any(a["reason"] == "no_fit" and a.get("detail") for p in plans for a in p["left_alone"])
    assert any(p["failures"] for p in plans) and any(p["rule_conflicts"] for p in plans) and any(p["warnings"] for p in plans)
    assert {p["stop_reason"] for p in plans} >= {"no_gain", "balanced", "balancing_off", "placements", "max_moves"}
    assert {r["role"] for p in plans for r in p["nodes"].values()} >= {"balanced", "maintenance", "offline"}


def test_hostile_names_match_the_schema():
    assert errors(as_written(plan_cases.hostile_plan())) == []


@pytest.fixture(scope="module")
def simulated_snapshots(tmp_path_factory):
    pytest.importorskip("cryptography")
    pytest.importorskip("proxmoxer")
    pvesim = plan_cases.simulator_module()
    scenarios = [("demo", "demo"), ("pve8", "pve8"), ("pve9", "pve9")]
    scenarios += [("gen %dx%d s%d" % size, pvesim.generate(*size)) for size in ((5, 40, 1), (8, 120, 2), (16, 460, 3))]
    snaps = []
    with pvesim.Simulator(scenario="demo", port=0, cert_dir=str(tmp_path_factory.mktemp("pvesim"))) as sim:
        for label, scenario in scenarios:
            sim.reset(scenario=scenario)
            snaps.append((label, plan_cases.collect(sim)))
    return snaps


@pytest.mark.parametrize("option_label, options", SIMULATED_OPTIONS, ids=[o[0] for o in SIMULATED_OPTIONS])
def test_simulated_cluster_plans_match_the_schema(simulated_snapshots, option_label, options):
    for label, snap in simulated_snapshots:
        data = as_written(planner.plan(snap, settings(**options(snap))).to_dict())
        assert errors(data) == [], "%s, %s" % (label, option_label)
        assert data["cluster"]["nodes"] == len(snap.nodes) and len(data["nodes"]) == len(snap.nodes)


def test_simulated_drain_only_and_return_plans_match_the_schema(simulated_snapshots):
    for label, snap in simulated_snapshots:
        first = plan_cases.first_nodes(snap, 1)
        drain = planner.plan(snap, settings(maintenance_nodes=first), balance=False)
        wanted = {m.vmid: m.source for m in drain.moves}
        back = placement.plan_placements(snap, settings(), wanted)
        for data in (as_written(drain.to_dict()), as_written(back.to_dict())):
            assert errors(data) == [], label


@pytest.mark.parametrize("change, where", [
    (lambda d: d.pop("format"), "format"),
    (lambda d: d.update(format="proxlb.balancer.plan/0"), "format"),
    (lambda d: d.pop("moves"), "moves"),
    (lambda d: d["moves"][0].update(type="qemu"), "moves/0/type"),
    (lambda d: d["moves"][0].update(wave=0), "moves/0/wave"),
    (lambda d: d["moves"][0].update(mem_bytes=-1), "moves/0/mem_bytes"),
    (lambda d: d["moves"][0].update(reason=""), "moves/0/reason"),
    (lambda d: d["moves"][0].pop("to"), "moves/0"),
    (lambda d: d["nodes"]["pve1"].update(role="sleeping"), "nodes/pve1/role"),
    (lambda d: d["metrics"]["lower_bound"].update(binding="luck"), "metrics/lower_bound/binding"),
    (lambda d: d["settings"].update(balanciness="10"), "settings/balanciness"),
    (lambda d: d.update(stop_reason="tired"), "stop_reason"),
    (lambda d: d["left_alone"].append({"vmid": 100, "name": "x", "node": "pve1"}), "left_alone/0"),
])
def test_the_schema_rejects_broken_plans(change, where):
    snap, options, make = plan_cases.hand_built_cases()[0][1:]
    data = as_written(make(snap, options).to_dict())
    assert errors(data) == [] and data["moves"]
    broken = copy.deepcopy(data)
    change(broken)
    found = errors(broken)
    assert any(e.startswith(where) or "'%s' is a required property" % where in e for e in found), found


def test_newer_keys_are_allowed():
    snap, options, make = plan_cases.hand_built_cases()[0][1:]
    data = as_written(make(snap, options).to_dict())
    data["capacity_conflicts"] = [{"node": "pve1"}]
    data["timing"] = {"plan_s": 0.1}
    data["moves"][0]["eta_s"] = 12
    assert errors(data) == []
