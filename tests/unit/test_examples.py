# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduling examples (examples/, docs/schedules.md) parse and fit together."""

from __future__ import annotations

import configparser
import glob
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible.parsing.yaml.loader import AnsibleLoader

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import connection_argument_spec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
SERVICE = os.path.join(EXAMPLES, "systemd", "proxlb-rebalance.service")
TIMER = os.path.join(EXAMPLES, "systemd", "proxlb-rebalance.timer")
CRON = os.path.join(EXAMPLES, "cron", "proxlb-rebalance")
ENV_FILE = os.path.join(EXAMPLES, "proxlb.env")
LOCK = "/run/lock/proxlb-rebalance.lock"
# the PROXMOX_* variables the modules read, from their argument spec
MODULE_ENV = {spec["fallback"][1][0] for spec in connection_argument_spec().values()}


def read(path):
    with open(path) as handle:
        return handle.read()


def playbook(name):
    return yaml.load(read(os.path.join(EXAMPLES, "awx", name)), Loader=AnsibleLoader)  # nosec - Ansible's own loader


def tasks(plays, module):
    return [task[module] for play in plays for task in play["tasks"] if module in task]


def unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    # systemd continues a line with a trailing backslash; configparser only knows indentation
    parser.read_string(read(path).replace("\\\n", " "))
    return parser


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXAMPLES, "awx", "*.yml"))))
def test_yaml_examples_are_playbooks(path):
    plays = yaml.load(read(path), Loader=AnsibleLoader)  # nosec - Ansible's own loader
    assert isinstance(plays, list) and plays
    for play in plays:
        assert play["hosts"] == "localhost" and play["tasks"]
        assert all(task.get("name") for task in play["tasks"])


def test_credential_type_injects_what_the_modules_read():
    plays = playbook("credential_type.yml")
    [kind] = tasks(plays, "awx.awx.credential_type")
    fields = {field["id"]: field for field in kind["inputs"]["fields"]}
    assert set(kind["inputs"]["required"]) == set(fields)
    assert fields["api_token_secret"]["secret"] is True
    env = kind["injectors"]["env"]
    assert set(env) <= MODULE_ENV and not any(name.startswith("ANSIBLE_") for name in env)   # AWX reserves ANSIBLE_*
    assert {"PROXMOX_HOST", "PROXMOX_USER", "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET", "PROXMOX_CA_PATH"} <= set(env)
    files = {key.partition(".")[2] for key in kind["injectors"]["file"]}
    for template in list(env.values()) + list(kind["injectors"]["file"].values()):
        names = re.findall(r"{{\s*([\w.]+)\s*}}", template)
        assert names and all(n in fields or (n.startswith("tower.filename.") and n.split(".")[2] in files) for n in names)
    [credential] = tasks(plays, "awx.awx.credential")
    assert set(credential["inputs"]) == set(fields)
    assert credential["credential_type"] == kind["name"]


def test_schedules_launch_a_dry_run_and_a_rebalance_that_never_overlap():
    templates = {t["name"]: t for t in tasks(playbook("schedule.yml"), "awx.awx.job_template")}
    assert sorted(t["job_type"] for t in templates.values()) == ["check", "run"]
    assert all(t["allow_simultaneous"] is False and t["timeout"] > 0 for t in templates.values())
    assert {t["playbook"] for t in templates.values()} == {"playbooks/rebalance.yml"}
    schedules = tasks(playbook("schedule.yml"), "awx.awx.schedule")
    assert sorted(s["unified_job_template"] for s in schedules) == sorted(templates)
    for schedule in schedules:
        assert re.match(r"^DTSTART;TZID=[^:]+:\d{8}T\d{6} RRULE:FREQ=(DAILY|WEEKLY);INTERVAL=\d+(;BYDAY=[A-Z,]+)?$",
                        schedule["rrule"]), schedule["rrule"]
    [credential] = tasks(playbook("credential_type.yml"), "awx.awx.credential")
    vars_ = playbook("schedule.yml")[0]["vars"]
    assert vars_["proxlb_awx_credential"] == credential["name"]


CRON_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def cron_field_ok(text, low, high):
    for item in text.split(","):
        match = re.match(r"^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$", item)
        if not match:
            return False
        start, end, step = match.group(2), match.group(3), match.group(4)
        numbers = [int(n) for n in (start, end) if n is not None]
        if any(not low <= n <= high for n in numbers) or (end is not None and int(start) > int(end)):
            return False
        if step is not None and int(step) == 0:
            return False
    return True


def test_cron_lines_are_valid_and_locked():
    jobs = []
    for line in read(CRON).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, line
        assert all(cron_field_ok(f, *bounds) for f, bounds in zip(fields[:5], CRON_FIELDS)), line
        assert fields[5] == "proxlb"
        jobs.append(fields[6])
    assert len(jobs) == 2
    for command in jobs:
        assert command.startswith("flock -n %s " % LOCK)
        assert ". /etc/proxlb/proxlb.env" in command and "ansible-playbook proxlb.balancer.rebalance" in command
        assert "%" not in command                          # cron would turn it into a newline
    assert sum("--check" in command for command in jobs) == 1


def test_env_file_sets_only_what_the_modules_read():
    names = [line.split("=", 1)[0] for line in read(ENV_FILE).splitlines() if line and not line.startswith("#")]
    assert names and set(names) <= MODULE_ENV


def test_systemd_units_fit_together():
    service, timer = unit(SERVICE), unit(TIMER)
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].split()[:3] == ["/usr/bin/flock", "--nonblock", LOCK]
    assert "ansible-playbook proxlb.balancer.rebalance" in " ".join(service["Service"]["ExecStart"].split())
    assert service["Service"]["EnvironmentFile"] == "/etc/proxlb/proxlb.env"
    assert LOCK.rsplit("/", 1)[0] in service["Service"]["ReadWritePaths"].split()
    assert timer["Timer"]["Unit"] == os.path.basename(SERVICE)
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    for path in (SERVICE, TIMER):
        shutil.copy(path, str(tmp_path))
    names = [str(tmp_path / os.path.basename(p)) for p in (SERVICE, TIMER)]
    result = subprocess.run(["systemd-analyze", "verify"] + names, capture_output=True, text=True, check=False)
    # unknown keys are only warnings (exit 0): any complaint about these files counts
    complaints = [line for line in result.stderr.splitlines() if "proxlb-rebalance" in line]
    assert result.returncode == 0 and complaints == [], result.stderr


def test_the_docs_show_every_example():
    docs = read(os.path.join(ROOT, "docs", "schedules.md"))
    # the schedule examples; examples/ also holds inventories and variables of other guides
    schedule_files = [ENV_FILE] + [p for d in ("awx", "cron", "systemd") for p in glob.glob(os.path.join(EXAMPLES, d, "*"))]
    for path in schedule_files:
        if os.path.isfile(path):
            assert os.path.relpath(path, ROOT) in docs, path
