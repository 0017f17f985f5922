# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of option values shared by every option family: one message shape for one mistake."""

from __future__ import annotations

import math

from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ConfigError


def whole_number(value, option, minimum, maximum=None, meaning=None):
    """``value`` as an int within [minimum, maximum]; a ConfigError naming ``option`` otherwise.

    Whole floats (``4.0``) and numeric strings are accepted, as Ansible passes them from
    templates; booleans, fractions, infinities and text are not.
    """
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not math.isfinite(number) or number != int(number):
        raise ConfigError(option, "%r is not a whole number; give %s" % (value, _wanted(minimum, maximum, meaning)))
    number = int(number)
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(option, "%d is out of range; give %s" % (number, _wanted(minimum, maximum, meaning)))
    return number


def _wanted(minimum, maximum, meaning):
    limits = "%d or more" % minimum if maximum is None else "a value from %d to %d" % (minimum, maximum)
    return "%s, %s" % (meaning, limits) if meaning else limits
