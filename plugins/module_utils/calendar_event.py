# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PVE calendar events (the ``schedule`` of backup jobs): parse them and find occurrences.

The syntax is the one PVE documents as "Schedule Format" and reads with its own parser::

    [WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]] [UTC]

* weekdays ``mon``..``sun`` (or ``monday``..), comma lists and ``..`` ranges (``sat..mon``
  wraps); case does not matter;
* every number field takes comma lists of ``N``, ``A..B``, ``A/STEP`` (A, A+STEP, ...),
  ``A..B/STEP`` and ``*`` or ``*/STEP`` (every value, or every STEP from the first);
* a time without ``:`` is **minutes** (``*/5`` is every five minutes, ``30/10`` is :30, :40,
  :50 of every hour); with one ``:`` it is hours and minutes; seconds default to 0;
* no time means 00:00:00, no date means every day; a leading word can also be one of
  ``minutely hourly daily weekly monthly yearly annually quarterly semiannually semi-annually``;
* ``UTC`` at the end evaluates the event in UTC instead of the node's local time.

Like PVE's parser, an hour that does not fit (``25:00``) is read as minutes:seconds, a range
must not run backwards and ``*/0`` is refused. Anything else that does not parse raises
``CalendarEventError``.

Evaluation is pure: the caller passes the moment. A naive datetime is a wall-clock time in the
zone the schedule is written for (the PVE node's local time, or UTC for ``... UTC``); an aware
one is read in its own zone (converted to UTC for ``UTC`` events) and the results carry that zone.
Wall-clock times that a DST change skips or repeats are taken as written.

No imports from the rest of the collection: the PVE simulator in tools/pvesim loads this file
on its own to compute the ``next-run`` PVE reports.
"""

from __future__ import annotations

import calendar
import datetime as _dt
from dataclasses import dataclass
from typing import FrozenSet, Optional

WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
            "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}

# field -> (first value of */STEP, exclusive upper bound PVE accepts)
_FIELDS = {
    "year": (0, 2200),
    "month": (1, 13),
    "day": (1, 32),
    "hour": (0, 24),
    "minute": (0, 60),
    "second": (0, 60),
}
_FIRST_YEAR = 1970
_LAST_YEAR = 2199
# Every combination of weekday, month and day repeats within one 400-year Gregorian cycle.
_SEARCH_YEARS = 400

_MIDNIGHT = frozenset([0])
_KEYWORDS = {
    # keyword -> (months, days, weekdays, hours, minutes); seconds are always 0
    "minutely": (None, None, frozenset(), None, None),
    "hourly": (None, None, frozenset(), None, _MIDNIGHT),
    "daily": (None, None, frozenset(), _MIDNIGHT, _MIDNIGHT),
    "weekly": (None, None, frozenset([0]), _MIDNIGHT, _MIDNIGHT),
    "monthly": (None, frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
    "yearly": (frozenset([1]), frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
    "annually": (frozenset([1]), frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
    "quarterly": (frozenset([1, 4, 7, 10]), frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
    "semiannually": (frozenset([1, 7]), frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
    "semi-annually": (frozenset([1, 7]), frozenset([1]), frozenset(), _MIDNIGHT, _MIDNIGHT),
}


class CalendarEventError(ValueError):
    """``expression`` is not a calendar event PVE would accept; ``str()`` says where it stopped."""

    def __init__(self, expression, reason):
        super().__init__("cannot read calendar event '%s': %s" % (expression, reason))
        self.expression = expression
        self.reason = reason


@dataclass(frozen=True)
class CalendarEvent:
    """A parsed calendar event. ``None`` in a field means every value; ``weekdays`` empty means every day."""

    expression: str
    weekdays: FrozenSet[int] = frozenset()     # 0 = Monday .. 6 = Sunday
    years: Optional[FrozenSet[int]] = None
    months: Optional[FrozenSet[int]] = None
    days: Optional[FrozenSet[int]] = None
    hours: Optional[FrozenSet[int]] = None
    minutes: Optional[FrozenSet[int]] = None
    seconds: Optional[FrozenSet[int]] = _MIDNIGHT
    utc: bool = False

    def matches(self, moment):
        """True when ``moment`` (to the second, wall clock of the event's zone) is an occurrence."""
        moment = _wall_clock(self, moment)
        return self.date_matches(moment.date()) and all(
            allowed is None or value in allowed
            for allowed, value in ((self.hours, moment.hour), (self.minutes, moment.minute), (self.seconds, moment.second)))

    def date_matches(self, day):
        """True when ``day`` (a date) fits the weekday, year, month and day fields."""
        return ((self.years is None or day.year in self.years)
                and (self.months is None or day.month in self.months)
                and (self.days is None or day.day in self.days)
                and (not self.weekdays or day.weekday() in self.weekdays))


# -- parsing -------------------------------------------------------------------------------

class _Cursor:
    """The unparsed rest of the expression.

    Optional parts rewind when they fail; the failure that got furthest is kept, because it
    explains a refused expression better than "unexpected text" at the rewound position.
    """

    def __init__(self, expression, text):
        self.expression = expression
        self.text = text
        self.pos = 0
        self.furthest = (-1, None)

    def rest(self):
        return self.text[self.pos:]

    def take(self, literal):
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def skip_spaces(self):
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def fail(self, reason):
        rest = self.rest()
        error = CalendarEventError(self.expression, "%s at '%s'" % (reason, rest) if rest else "%s at the end" % reason)
        if self.pos > self.furthest[0]:
            self.furthest = (self.pos, error)
        return error

    def refuse(self, reason):
        """The error for a parse that cannot go on here: the furthest failure if it got further."""
        position, error = self.furthest
        return error if error is not None and position > self.pos else self.fail(reason)


def parse(expression):
    """``'mon..fri 02:00'`` -> ``CalendarEvent``; raises ``CalendarEventError``."""
    if isinstance(expression, CalendarEvent):
        return expression
    if not isinstance(expression, str):
        raise CalendarEventError(expression, "a calendar event is a string")
    text = expression.strip()
    utc = False
    if text.endswith("UTC"):
        utc = True
        text = text[:-3].rstrip(" \t")
    if not text:
        raise CalendarEventError(expression, "it is empty")
    if text in _KEYWORDS:
        months, days, weekdays, hours, minutes = _KEYWORDS[text]
        return CalendarEvent(expression=expression, weekdays=weekdays, months=months, days=days,
                             hours=hours, minutes=minutes, utc=utc)
    cursor = _Cursor(expression, text)
    fields = {}
    has_weekdays = text[0].isalpha()
    weekdays = frozenset()
    if has_weekdays:
        weekdays = _weekday_list(cursor)
        cursor.skip_spaces()
    date = _optional(cursor, _date_spec)
    if date is not None:
        fields.update(date)
        cursor.skip_spaces()
    time_spec = _optional(cursor, _time_spec)
    if time_spec is not None:
        fields.update(time_spec)
    else:
        fields.update(hours=_MIDNIGHT, minutes=_MIDNIGHT, seconds=_MIDNIGHT)
    if cursor.rest():
        raise cursor.refuse("unexpected text")
    if not (has_weekdays or date is not None or time_spec is not None):
        raise cursor.refuse("expected a weekday, date or time")
    return CalendarEvent(expression=expression, weekdays=weekdays, utc=utc, **fields)


def _optional(cursor, part):
    """Run ``part``; on failure rewind, as PVE's parser does for optional parts."""
    start = cursor.pos
    try:
        return part(cursor)
    except CalendarEventError:
        cursor.pos = start
        return None


def _weekday_list(cursor):
    days = set()
    while True:
        first = _weekday(cursor)
        if cursor.take(".."):
            last = _weekday(cursor)
            # sat..mon wraps over the end of the week
            span = (last - first) % 7
            days.update((first + offset) % 7 for offset in range(span + 1))
        else:
            days.add(first)
        if not cursor.take(","):
            return frozenset(days)


def _weekday(cursor):
    start = cursor.pos
    while cursor.pos < len(cursor.text) and cursor.text[cursor.pos].isalpha():
        cursor.pos += 1
    word = cursor.text[start:cursor.pos].lower()
    if word not in WEEKDAYS:
        cursor.pos = start
        raise cursor.fail("expected a weekday (mon, tue, ... sun)")
    return WEEKDAYS[word]


def _date_spec(cursor):
    start = cursor.pos
    try:
        year = _value_list(cursor, "year")
        _expect(cursor, "-")
        month = _value_list(cursor, "month")
        _expect(cursor, "-")
        day = _value_list(cursor, "day")
        return {"years": year, "months": month, "days": day}
    except CalendarEventError:
        cursor.pos = start
    month = _value_list(cursor, "month")
    _expect(cursor, "-")
    day = _value_list(cursor, "day")
    return {"months": month, "days": day}


def _time_spec(cursor):
    start = cursor.pos
    hours = None
    try:
        hours = _value_list(cursor, "hour")
        _expect(cursor, ":")
    except CalendarEventError:
        # no hour part: the first number is the minute
        cursor.pos = start
        hours = None
    minutes = _value_list(cursor, "minute")
    seconds = _MIDNIGHT
    if cursor.take(":"):
        seconds = _value_list(cursor, "second")
    return {"hours": hours, "minutes": minutes, "seconds": seconds}


def _expect(cursor, literal):
    if not cursor.take(literal):
        raise cursor.fail("expected '%s'" % literal)


def _value_list(cursor, field):
    """One field: ``*``, ``*/STEP`` or a comma list of values, ranges and repetitions -> set or None."""
    first, bound = _FIELDS[field]
    if cursor.take("*"):
        start = cursor.pos
        if cursor.take("/"):
            step = _number(cursor, field, bound)
            if step > 0:
                return frozenset(range(first, bound, step))
        cursor.pos = start
        return None
    values = set()
    while True:
        values.update(_value_item(cursor, field, bound))
        if not cursor.take(","):
            return frozenset(values)


def _value_item(cursor, field, bound):
    start = _number(cursor, field, bound)
    end = None
    if cursor.take(".."):
        end = _number(cursor, field, bound)
        if start > end:
            raise cursor.fail("range %d..%d runs backwards" % (start, end))
    if cursor.take("/"):
        step = _number(cursor, field, bound)
        if step == 0:
            return [start]
        return range(start, (bound - 1 if end is None else end) + 1, step)
    if end is not None:
        return range(start, end + 1)
    return [start]


def _number(cursor, field, bound):
    start = cursor.pos
    while cursor.pos < len(cursor.text) and cursor.text[cursor.pos].isdigit():
        cursor.pos += 1
    if cursor.pos == start:
        raise cursor.fail("expected a number")
    value = int(cursor.text[start:cursor.pos])
    if value >= bound:
        cursor.pos = start
        raise cursor.fail("%s %d is too large" % (field, value))
    return value


# -- evaluation ----------------------------------------------------------------------------

def next_due(event, after):
    """The first occurrence strictly after ``after`` (to the second), or None if there is none."""
    return _search(parse(event), after, forward=True)


def last_due(event, at):
    """The latest occurrence at or before ``at`` (to the second), or None if there is none."""
    return _search(parse(event), at, forward=False)


def _wall_clock(event, moment):
    if moment.tzinfo is not None and event.utc:
        moment = moment.astimezone(_dt.timezone.utc)
    return moment.replace(microsecond=0)


def _search(event, moment, forward):
    if not isinstance(moment, _dt.datetime):
        raise TypeError("expected a datetime, got %r" % (moment,))
    start = _wall_clock(event, moment)
    zone = start.tzinfo
    start = start.replace(tzinfo=None)
    if forward:
        start += _dt.timedelta(seconds=1)
    lists = [_sorted(event.hours, 23), _sorted(event.minutes, 59), _sorted(event.seconds, 59)]
    for day in _candidate_days(event, start.date(), forward):
        clock = (start.hour, start.minute, start.second) if day == start.date() else None
        found = _time_of_day(lists, clock, forward)
        if found is not None:
            return _dt.datetime(day.year, day.month, day.day, *found, tzinfo=zone)
    return None


def _sorted(values, high):
    return list(range(high + 1)) if values is None else sorted(v for v in values if v <= high)


def _time_of_day(lists, clock, forward):
    """The first time of day not before ``clock`` (forward) or the last not after it (backward).

    ``clock`` None means the whole day. Backward is forward on negated values: negating every
    part of (hour, minute, second) reverses their lexical order.
    """
    if not forward:
        lists = [[-v for v in reversed(values)] for values in lists]
        clock = None if clock is None else tuple(-v for v in clock)
    hours, minutes, seconds = lists
    found = None
    if clock is None:
        found = (hours[0], minutes[0], seconds[0]) if hours and minutes and seconds else None
    else:
        found = _first_not_before(hours, minutes, seconds, clock)
    if found is None or forward:
        return found
    return tuple(-v for v in found)


def _first_not_before(hours, minutes, seconds, clock):
    for hour in hours:
        if hour < clock[0]:
            continue
        if hour > clock[0]:
            return (hour, minutes[0], seconds[0]) if minutes and seconds else None
        for minute in minutes:
            if minute < clock[1]:
                continue
            if minute > clock[1]:
                return (hour, minute, seconds[0]) if seconds else None
            for second in seconds:
                if second >= clock[2]:
                    return hour, minute, second
    return None


def _candidate_days(event, first_day, forward):
    """Days from ``first_day`` on (forward) or back (backward) whose date part matches, nearest first."""
    step = 1 if forward else -1
    if forward:
        last_year = min(_LAST_YEAR, first_day.year + _SEARCH_YEARS)
    else:
        last_year = max(_FIRST_YEAR, first_day.year - _SEARCH_YEARS)
    for year in range(first_day.year, last_year + step, step):
        if event.years is not None and year not in event.years:
            continue
        for month in (range(1, 13) if forward else range(12, 0, -1)):
            if event.months is not None and month not in event.months:
                continue
            length = calendar.monthrange(year, month)[1]
            for number in (range(1, length + 1) if forward else range(length, 0, -1)):
                day = _dt.date(year, month, number)
                if (day >= first_day if forward else day <= first_day) and event.date_matches(day):
                    yield day
