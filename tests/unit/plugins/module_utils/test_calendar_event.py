# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE calendar events: the examples of PVE's "Schedule Format" chapter, evaluated at fixed moments."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.proxlb.balancer.plugins.module_utils.calendar_event import (
    CalendarEventError,
    last_due,
    next_due,
    parse,
)

# Wednesday 2026-03-04 10:17:30, and a Saturday night just before the weekend rolls over.
WED = dt.datetime(2026, 3, 4, 10, 17, 30)
SAT = dt.datetime(2026, 3, 7, 23, 59, 59)


def at(text):
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


# (expression, now, next occurrence after now, last occurrence at or before now)
EXAMPLES = [
    # The "Schedule Examples" table of PVE's documentation
    ("mon,tue,wed,thu,fri", WED, "2026-03-05 00:00:00", "2026-03-04 00:00:00"),
    ("mon..fri", SAT, "2026-03-09 00:00:00", "2026-03-06 00:00:00"),
    ("sat,sun", WED, "2026-03-07 00:00:00", "2026-03-01 00:00:00"),
    ("sat..sun", SAT, "2026-03-08 00:00:00", "2026-03-07 00:00:00"),
    ("mon,wed,fri", WED, "2026-03-06 00:00:00", "2026-03-04 00:00:00"),
    ("12:05", WED, "2026-03-04 12:05:00", "2026-03-03 12:05:00"),
    ("*/5", WED, "2026-03-04 10:20:00", "2026-03-04 10:15:00"),
    ("0/5", WED, "2026-03-04 10:20:00", "2026-03-04 10:15:00"),
    ("mon..wed 30/10", WED, "2026-03-04 10:30:00", "2026-03-04 09:50:00"),
    ("mon,tue,wed 30/10", at("2026-03-04 23:55:00"), "2026-03-09 00:30:00", "2026-03-04 23:50:00"),
    ("mon..fri 8..17,22:0/15", at("2026-03-04 17:50:00"), "2026-03-04 22:00:00", "2026-03-04 17:45:00"),
    ("fri 12..13:5/20", WED, "2026-03-06 12:05:00", "2026-02-27 13:45:00"),
    ("fri 12,13:5/20", at("2026-03-06 12:45:00"), "2026-03-06 13:05:00", "2026-03-06 12:45:00"),
    ("12,14,16,18,20,22:5", WED, "2026-03-04 12:05:00", "2026-03-03 22:05:00"),
    ("12/2:5", at("2026-03-04 22:05:01"), "2026-03-05 12:05:00", "2026-03-04 22:05:00"),
    ("*", WED, "2026-03-04 10:18:00", "2026-03-04 10:17:00"),
    ("*/1", WED, "2026-03-04 10:18:00", "2026-03-04 10:17:00"),
    ("*-05", WED, "2026-03-05 00:00:00", "2026-02-05 00:00:00"),
    ("Sat *-1..7 15:00", WED, "2026-03-07 15:00:00", "2026-02-07 15:00:00"),
    ("2015-10-21", WED, None, "2015-10-21 00:00:00"),
    # The special values
    ("minutely", WED, "2026-03-04 10:18:00", "2026-03-04 10:17:00"),
    ("hourly", WED, "2026-03-04 11:00:00", "2026-03-04 10:00:00"),
    ("daily", WED, "2026-03-05 00:00:00", "2026-03-04 00:00:00"),
    ("weekly", WED, "2026-03-09 00:00:00", "2026-03-02 00:00:00"),
    ("monthly", WED, "2026-04-01 00:00:00", "2026-03-01 00:00:00"),
    ("yearly", WED, "2027-01-01 00:00:00", "2026-01-01 00:00:00"),
    ("annually", WED, "2027-01-01 00:00:00", "2026-01-01 00:00:00"),
    ("quarterly", WED, "2026-04-01 00:00:00", "2026-01-01 00:00:00"),
    ("semiannually", WED, "2026-07-01 00:00:00", "2026-01-01 00:00:00"),
    ("semi-annually", at("2026-07-01 00:00:00"), "2027-01-01 00:00:00", "2026-07-01 00:00:00"),
    # Schedules as backup jobs use them
    ("mon..fri 02:00", SAT, "2026-03-09 02:00:00", "2026-03-06 02:00:00"),
    ("*/4:00", WED, "2026-03-04 12:00:00", "2026-03-04 08:00:00"),
    ("sat 21:30", WED, "2026-03-07 21:30:00", "2026-02-28 21:30:00"),
    ("mon,tue 3:15", WED, "2026-03-09 03:15:00", "2026-03-03 03:15:00"),
    ("2/3:00", WED, "2026-03-04 11:00:00", "2026-03-04 08:00:00"),
    ("*:0/15", WED, "2026-03-04 10:30:00", "2026-03-04 10:15:00"),
    ("sun", WED, "2026-03-08 00:00:00", "2026-03-01 00:00:00"),
    ("2024-*-01", WED, None, "2024-12-01 00:00:00"),
    ("2026-*-01 21:00", WED, "2026-04-01 21:00:00", "2026-03-01 21:00:00"),
    ("sat..mon 4:00", WED, "2026-03-07 04:00:00", "2026-03-02 04:00:00"),   # wraps over Sunday
    ("Saturday,SUN 4:00:30", WED, "2026-03-07 04:00:30", "2026-03-01 04:00:30"),
    ("1..4:0/30", at("2026-03-04 04:30:00"), "2026-03-05 01:00:00", "2026-03-04 04:30:00"),
    ("8..17/3:00", WED, "2026-03-04 11:00:00", "2026-03-04 08:00:00"),       # 8, 11, 14, 17
    ("*-02-29 06:00", WED, "2028-02-29 06:00:00", "2024-02-29 06:00:00"),
    ("21:00 UTC", WED, "2026-03-04 21:00:00", "2026-03-03 21:00:00"),
]


@pytest.mark.parametrize("expression, now, following, previous", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_documented_schedules(expression, now, following, previous):
    assert next_due(expression, now) == (at(following) if following else None)
    assert last_due(expression, now) == (at(previous) if previous else None)


def test_a_moment_on_an_occurrence():
    moment = at("2026-03-04 02:00:00")
    assert last_due("mon..fri 02:00", moment) == moment              # at or before
    assert next_due("mon..fri 02:00", moment) == at("2026-03-05 02:00:00")   # strictly after
    # sub-second parts do not make a moment later than its occurrence
    assert last_due("mon..fri 02:00", moment.replace(microsecond=999999)) == moment


def test_hours_that_do_not_fit_are_minutes_and_seconds_as_pve_reads_them():
    # PVE's parser takes '25' as the minute once it fails as an hour: 25:00 is mm:ss
    assert next_due("25:00", WED) == at("2026-03-04 10:25:00")
    # and a range in the minutes with a step in the seconds is just that
    event = parse("fri 01:00..05:00/30")
    assert event.hours == frozenset([1]) and event.minutes == frozenset(range(6)) and event.seconds == frozenset([0, 30])
    assert next_due(event, at("2026-03-06 01:05:00")) == at("2026-03-06 01:05:30")


def test_a_plain_number_is_a_minute_not_an_hour():
    assert next_due("mon..fri 22", WED) == at("2026-03-04 10:22:00")


def test_an_impossible_date_has_no_occurrence():
    assert next_due("*-02-30", WED) is None
    assert last_due("*-02-30", WED) is None


def test_aware_moments_keep_their_zone():
    cet = dt.timezone(dt.timedelta(hours=1), "CET")
    now = WED.replace(tzinfo=cet)
    assert next_due("21:00", now) == dt.datetime(2026, 3, 4, 21, 0, tzinfo=cet)
    # a UTC event is evaluated in UTC whatever zone the moment is in
    due = next_due("21:00 UTC", now)
    assert due == dt.datetime(2026, 3, 4, 21, 0, tzinfo=dt.timezone.utc)
    assert due.astimezone(cet).hour == 22


@pytest.mark.parametrize("expression", [
    "", "   ", "UTC", "nope", "02:30 mon", "Mon-Fri 02:30", "* 02:30", "mon 02:70", "mon 60:59",
    "*/0", "5..3", "mon;tue", "Daily", "13-01", "*-13-01", "*:*:60", "mon,", "12:", "2200-01-01",
])
def test_what_pve_refuses_is_refused(expression):
    with pytest.raises(CalendarEventError) as err:
        parse(expression)
    assert err.value.expression == expression
    assert "cannot read calendar event" in str(err.value)


def test_errors_say_where_the_parse_stopped():
    with pytest.raises(CalendarEventError) as err:
        parse("mon 02:70")
    assert "minute 70 is too large" in str(err.value)
    with pytest.raises(CalendarEventError) as err:
        parse("02:30 mon")
    assert "unexpected text at ' mon'" in str(err.value)


def test_non_strings_are_refused():
    with pytest.raises(CalendarEventError):
        parse(None)
    with pytest.raises(TypeError):
        next_due("daily", "2026-03-04")


# -- properties ----------------------------------------------------------------------------

# without a fixed year, so that every moment has an occurrence after it
SCHEDULES = [e[0] for e in EXAMPLES if e[2] is not None and "UTC" not in e[0] and not re.match(r"\d{4}-", e[0])]
MOMENTS = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(expression=st.sampled_from(SCHEDULES), now=MOMENTS)
def test_next_is_the_first_occurrence_after_now(expression, now):
    event = parse(expression)
    due = next_due(event, now)
    assert due is not None and due > now and event.matches(due)
    # no occurrence is skipped: nothing matches in the minutes between (all these events fire at :00)
    if due - now <= dt.timedelta(days=2):
        probe = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        while probe < due:
            assert not event.matches(probe), probe
            probe += dt.timedelta(minutes=1)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(expression=st.sampled_from(SCHEDULES), now=MOMENTS)
def test_last_and_next_meet(expression, now):
    event = parse(expression)
    previous = last_due(event, now)
    assert previous is not None and previous <= now and event.matches(previous)
    assert next_due(event, previous - dt.timedelta(seconds=1)) == previous
    assert last_due(event, next_due(event, now)) == next_due(event, now)
