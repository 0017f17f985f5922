#!/usr/bin/env python
"""Check that the rebalance role's wave tasks name the waves that really ran.

    check_waves.py CONFIG OUTPUT

OUTPUT is the log of one ansible-playbook run of the role (no check mode); the simulator behind
CONFIG (integration_config.yml) still holds that run's tasks. The plan table gives each guest's
wave; the simulator's task list tells which guests the role asked PVE to migrate (a
``hamigrate`` task, or a ``qmigrate``/``vzmigrate`` task of the API user) in which order, and
which guests PVE moved along by itself (a migration of root@pam without a request: HA
positive affinity). Fails unless:

- the wave tasks come in increasing plan order, each once, each right after the include that
  announces it, and name "of N" with the plan's last wave;
- each wave task names exactly the guests requested in that wave, all of the plan's wave with
  that number, and the requests of a wave all come after those of the wave before;
- a wave whose guests all moved along earlier has no task, and nothing is named after the last
  wave ran but the summary, which counts the guests moved along;
- at least one guest was moved along, so the case this checks did happen.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
import urllib.request

import yaml

ROLE_TASK = re.compile(r"^TASK \[proxlb\.balancer\.rebalance : (.*?)\] \**$")
WAVE = re.compile(r"^Wave (\d+) of (\d+)(?:: (.*))?$")
PLAN_ROW = re.compile(r'^\s*"wave (\d+)\s+(\d+)\s')
MOVE = re.compile(r"^(\d+) \S+ \S+ -> \S+$")
ALONG = re.compile(r"\((\d+) moved along by PVE\)")


def fail(message):
    raise SystemExit("check_waves: " + message)


def simulator_tasks(config):
    context = ssl.create_default_context(cafile=config["pvesim_ca_path"])
    with urllib.request.urlopen(config["pvesim_url"] + "/_sim/state", context=context) as answer:
        return json.load(answer)["tasks"]


def read_log(path):
    """Role task names in order, the plan's {vmid: wave} and the summary's moved-along count."""
    names, plan, along = [], {}, None
    in_plan = False
    with open(path) as handle:
        for line in handle:
            match = ROLE_TASK.match(line.rstrip("\n"))
            if match:
                names.append(match.group(1))
                in_plan = match.group(1) == "Show the plan"
                continue
            row = PLAN_ROW.match(line)
            if in_plan and row:
                plan[int(row.group(2))] = int(row.group(1))
            found = ALONG.search(line)
            if found and names and names[-1] == "Summary":
                along = int(found.group(1))
    return names, plan, along


def main(argv):
    with open(argv[1]) as handle:
        config = yaml.safe_load(handle)
    names, plan, along_reported = read_log(argv[2])
    if not plan:
        fail("no plan table in the log")
    last_wave = max(plan.values())

    # Task names from the first wave on: pairs of (include "Wave N of M", task "Wave N of M: moves").
    start = next((i for i, name in enumerate(names) if WAVE.match(name)), None)
    if start is None:
        fail("no wave task in the log")
    labels = []
    rest = names[start:]
    while rest and WAVE.match(rest[0]) and not WAVE.match(rest[0]).group(3):
        include = WAVE.match(rest[0])
        task = WAVE.match(rest[1]) if len(rest) > 1 else None
        if task is None or not task.group(3) or task.group(1, 2) != include.group(1, 2):
            fail("include %r is not followed by its wave task: %r" % (rest[0], rest[1:2]))
        if int(task.group(2)) != last_wave:
            fail("%r: the plan's last wave is %d" % (rest[1], last_wave))
        moves = task.group(3).split(", ")
        if not all(MOVE.match(m) for m in moves):
            fail("%r does not list its moves" % rest[1])
        labels.append((int(task.group(1)), [int(MOVE.match(m).group(1)) for m in moves]))
        after = ["Outcome of wave %s" % task.group(1), "Keep what is left for the next wave"]
        if rest[2:4] != after:
            fail("wave %s is followed by %r, not %r" % (task.group(1), rest[2:4], after))
        rest = rest[4:]
    if rest[:2] != ["Summary", "Summary"]:
        fail("after the last wave comes %r, not the summary" % rest[:2])
    if any(WAVE.match(name) for name in rest):
        fail("wave tasks after the summary: %r" % rest)
    numbers = [label[0] for label in labels]
    if numbers != sorted(set(numbers)):
        fail("wave numbers not increasing: %r" % numbers)
    for number, vmids in labels:
        wrong = [v for v in vmids if plan.get(v) != number]
        if wrong:
            fail("wave %d names %r, which the plan has in other waves" % (number, wrong))

    tasks = simulator_tasks(config)
    requested = [t for t in tasks if t["type"] == "hamigrate"
                 or (t["type"] in ("qmigrate", "vzmigrate") and t["user"] != "root@pam")]
    migrated = {t["vmid"] for t in tasks if t["type"] in ("qmigrate", "vzmigrate") and t["exitstatus"] == "OK"}
    along = migrated - {t["vmid"] for t in requested}
    order = [t["vmid"] for t in requested]
    expected = [v for label in labels for v in label[1]]
    if sorted(order) != sorted(expected):
        fail("requested %r, the wave tasks name %r" % (order, expected))
    position = {vmid: i for i, vmid in enumerate(order)}
    for (number, vmids), following in zip(labels, labels[1:]):
        if max(position[v] for v in vmids) > min(position[v] for v in following[1]):
            fail("a request of the wave after %d came before one of wave %d" % (number, number))
    if not along:
        fail("no guest was moved along by PVE: the scenario does not exercise HA positive affinity")
    if along - set(plan):
        fail("guests %r moved although the plan has no move for them" % sorted(along - set(plan)))
    skipped_waves = {plan[v] for v in along} - {plan[v] for v in order}
    if skipped_waves & set(numbers):
        fail("waves %r ran although PVE had done them" % sorted(skipped_waves & set(numbers)))
    if set(numbers) | skipped_waves != set(plan.values()):
        fail("waves %r neither ran nor were done by PVE" % sorted(set(plan.values()) - set(numbers) - skipped_waves))
    if along_reported != len(along):
        fail("the summary reports %r guest(s) moved along, the simulator %d" % (along_reported, len(along)))
    print("check_waves: waves %s ran; %s moved along by PVE (plan waves %s not run)"
          % (numbers, sorted(along), sorted(skipped_waves)))


if __name__ == "__main__":
    main(sys.argv)
