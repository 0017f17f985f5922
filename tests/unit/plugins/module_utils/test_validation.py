# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One check for whole-number options, one message shape."""

from __future__ import annotations

import pytest

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError
from ansible_collections.proxlb.balancer.plugins.module_utils.validation import whole_number


@pytest.mark.parametrize("value, message", [
    (0, "0 is out of range; give a value from 1 to 10"),
    (11, "11 is out of range; give a value from 1 to 10"),
    (2.5, "2.5 is not a whole number"),
    (True, "True is not a whole number"),
    ("three", "'three' is not a whole number"),
    (float("inf"), "inf is not a whole number"),
])
def test_whole_numbers_refuse_what_is_not_one(value, message):
    with pytest.raises(ConfigError) as err:
        whole_number(value, "parallel_moves", 1, 10)
    assert err.value.option == "parallel_moves" and message in str(err.value)


def test_whole_numbers_accept_whole_floats_and_strings():
    assert whole_number(4.0, "count", 1) == 4 and whole_number("7", "count", 1, 10) == 7
