# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recorded-shape PVE 8 and PVE 9 answers (fixtures/) and a client that serves them by path."""

from __future__ import annotations

import copy
import json
import os

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import PveApiError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
GIB = 1024 ** 3


def load(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return json.load(handle)


class CannedClient:
    """Serves canned answers by ``METHOD /path``; counts like ``PveClient`` does."""

    def __init__(self, answers, probe=True):
        self.answers = answers
        self.calls = 0
        self.requests = []
        self.version_info = copy.deepcopy(answers["GET /version"]) if probe else None

    def get(self, path, **params):
        return self.request("GET", path, params=params)

    def request(self, method, path, params=None, data=None, retries=None):
        self.calls += 1
        self.requests.append((method, path, dict(params or {}), retries))
        key = "%s %s" % (method, path)
        if key not in self.answers:
            raise PveApiError("PVE API error on %s: 501 Method '%s' not implemented" % (key, key), kind="http", status=501)
        answer = self.answers[key]
        if isinstance(answer, dict) and "__error__" in answer:
            error = answer["__error__"]
            raise PveApiError("PVE API error on %s: %d %s" % (key, error["status"], error["message"]),
                              kind=error.get("kind", "http"), status=error["status"])
        return copy.deepcopy(answer)

    @property
    def paths(self):
        return [path for _method, path, _params, _retries in self.requests]
