"""When a store's special days fall: the rules and the Turkish defaults.

A rule is one of:

- `MM-DD`: that date every year (`02-14`, Sevgililer Günü);
- `MM/day/N`: the Nth (1-5, or `last`) weekday of a month every year (`05/sun/2`, the second
  Sunday of May: Anneler Günü);
- `YYYY-MM-DD[,YYYY-MM-DD...]`: dates of their own, for days the lunar calendar moves
  (Ramazan Bayramı): the shop adds next year's when it knows it.

The two yearly forms cover the days a Turkish shop greets for with no yearly chore.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FIXED = re.compile(r"^(\d{2})-(\d{2})$")
_NTH = re.compile(r"^(\d{2})/(mon|tue|wed|thu|fri|sat|sun)/([1-5]|last)$")
_DATES = re.compile(r"^\d{4}-\d{2}-\d{2}(,\d{4}-\d{2}-\d{2})*$")
KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


class RuleError(ValueError):
    """A rule that names no date."""


@dataclass(frozen=True)
class DefaultDay:
    key: str
    name_tr: str
    name_en: str
    rule: str


# What every new store starts with (the `special-days` journey greets on them, each
# customer who consented to commercial email).
DEFAULTS = (
    DefaultDay("yilbasi", "Yılbaşı", "New Year's Day", "01-01"),
    DefaultDay("sevgililer-gunu", "Sevgililer Günü", "Valentine's Day", "02-14"),
    DefaultDay("kadinlar-gunu", "Dünya Kadınlar Günü", "International Women's Day", "03-08"),
    DefaultDay("anneler-gunu", "Anneler Günü", "Mother's Day", "05/sun/2"),
    DefaultDay("babalar-gunu", "Babalar Günü", "Father's Day", "06/sun/3"),
)

HELP = (
    'use MM-DD ("02-14"), MM/day/N for the Nth weekday of a month ("05/sun/2": the second'
    ' Sunday of May; N may be "last"), or dates of their own ("2027-03-20,2028-03-09")'
)


def check_rule(rule: str) -> str:
    """The rule, tidied; RuleError says what is wrong with it."""
    text = rule.strip().lower().replace(" ", "")
    if match := _FIXED.match(text):
        month, day = int(match[1]), int(match[2])
        try:
            date(2000, month, day)  # a leap year: 02-29 is a date (kept on 02-28 otherwise)
        except ValueError:
            raise RuleError(f'"{rule}" is not a date of the year: {HELP}') from None
        return text
    if match := _NTH.match(text):
        if not 1 <= int(match[1]) <= 12:
            raise RuleError(f'"{rule}" names no month: {HELP}')
        return text
    if _DATES.match(text):
        for part in text.split(","):
            try:
                date.fromisoformat(part)
            except ValueError:
                raise RuleError(f'"{part}" is not a date: {HELP}') from None
        return ",".join(sorted(set(text.split(","))))
    raise RuleError(f'unknown rule "{rule}": {HELP}')


def dates_in(rule: str, year: int) -> list[date]:
    """The days the rule gives in `year` (a checked rule)."""
    if match := _FIXED.match(rule):
        month, day = int(match[1]), int(match[2])
        if (month, day) == (2, 29) and not calendar.isleap(year):
            return [date(year, 2, 28)]
        return [date(year, month, day)]
    if match := _NTH.match(rule):
        month, weekday = int(match[1]), WEEKDAYS.index(match[2])
        days = [
            d
            for d in (date(year, month, 1) + timedelta(days=i) for i in range(31))
            if d.month == month and d.weekday() == weekday
        ]
        if match[3] == "last":
            return [days[-1]]
        nth = int(match[3])
        return [days[nth - 1]] if nth <= len(days) else []
    return [d for d in map(date.fromisoformat, rule.split(",")) if d.year == year]


def next_date(rule: str, *, from_day: date) -> date | None:
    """The first day on or after `from_day` the rule gives; None when it gives no more."""
    if _DATES.match(rule):
        later = [d for d in map(date.fromisoformat, rule.split(",")) if d >= from_day]
        return min(later, default=None)
    for year in range(from_day.year, from_day.year + 8):
        for day in dates_in(rule, year):
            if day >= from_day:
                return day
    return None
