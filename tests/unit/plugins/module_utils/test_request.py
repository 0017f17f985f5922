# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A runner's view of a module call: lazy connection, warnings, files written only on change."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.request import Request


def test_connection_is_opened_only_when_asked_for():
    opened = []
    request = Request({"dest": None}, lambda: opened.append("client") or "client")
    assert opened == [] and request.warnings == [] and not request.check_mode and not request.diff
    assert request.connect() == "client" and opened == ["client"]


def test_file_is_written_only_when_its_content_changes(tmp_path):
    dest = tmp_path / "plan.json"
    request = Request({}, None)
    assert request.write_if_changed("one\n", str(dest)) is True
    assert dest.read_text() == "one\n"
    assert request.write_if_changed("one\n", str(dest)) is False
    assert request.write_if_changed("two\n", str(dest)) is True and dest.read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_check_mode_says_it_would_change_and_writes_nothing(tmp_path):
    dest = tmp_path / "plan.json"
    request = Request({}, None, check_mode=True)
    assert request.write_if_changed("one\n", str(dest)) is True
    assert not dest.exists()


def test_missing_directory_names_the_option(tmp_path):
    with pytest.raises(ConfigError) as err:
        Request({}, None).write_if_changed("x", str(tmp_path / "nowhere" / "plan.json"), option="dest")
    assert err.value.option == "dest" and "does not exist" in str(err.value)
