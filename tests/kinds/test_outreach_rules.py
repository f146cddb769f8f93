"""Outreach's pure rules: channel choice and quiet hours in the plaintiff's zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.outreach.channel import SUPPRESSED_STATUSES, choose_channel
from workers.outreach.quiet_hours import FALLBACK_ZONE, QuietHours, zone_of

STATUSES = [
    "new",
    "contacted",
    "no_answer",
    "left_voicemail",
    "reached_warm",
    "reached_hot",
    "callback_scheduled",
    "not_interested",
    "do_not_call",
    "bad_number",
    "signed",
]


@given(
    st.sampled_from(sorted(SUPPRESSED_STATUSES)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["auto", "email", "call"]),
)
def test_do_not_call_and_bad_number_are_never_contacted(
    status: str, has_email: bool, has_phone: bool, email_enabled: bool, requested: str
) -> None:
    decision = choose_channel(
        status=status,
        has_email=has_email,
        has_phone=has_phone,
        email_enabled=email_enabled,
        requested=requested,  # type: ignore[arg-type]
    )
    assert decision.outcome == "suppressed"
    assert decision.channel is None


@pytest.mark.parametrize(
    ("status", "has_email", "has_phone", "email_enabled", "requested", "outcome"),
    [
        ("new", True, True, True, "auto", "email"),
        ("new", True, True, False, "auto", "call"),
        ("new", False, True, True, "auto", "call"),
        ("new", True, False, False, "auto", "no_channel"),
        ("new", False, False, True, "auto", "no_channel"),
        ("reached_hot", True, True, True, "auto", "call"),
        ("callback_scheduled", True, False, True, "auto", "email"),
        ("contacted", True, True, True, "call", "call"),
        ("contacted", False, True, True, "email", "no_channel"),
        ("contacted", True, False, True, "call", "no_channel"),
        ("do_not_call", True, True, True, "email", "suppressed"),
        ("bad_number", True, True, True, "auto", "suppressed"),
    ],
)
def test_channel_rule_table(
    status: str,
    has_email: bool,
    has_phone: bool,
    email_enabled: bool,
    requested: str,
    outcome: str,
) -> None:
    decision = choose_channel(
        status=status,
        has_email=has_email,
        has_phone=has_phone,
        email_enabled=email_enabled,
        requested=requested,  # type: ignore[arg-type]
    )
    assert decision.outcome == outcome
    assert decision.rule


QUIET = QuietHours(time(20, 0), time(9, 0))
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        (time(8, 59), True),
        (time(9, 0), False),
        (time(13, 0), False),
        (time(19, 59), False),
        (time(20, 0), True),
        (time(23, 30), True),
        (time(0, 0), True),
    ],
)
def test_the_default_window_wraps_midnight(local: time, quiet: bool) -> None:
    assert QUIET.is_quiet(local) is quiet


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    assert not QuietHours(time(9, 0), time(9, 0)).is_quiet(time(3, 0))


def test_a_daytime_window() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0))
    assert lunch.is_quiet(time(12, 30))
    assert not lunch.is_quiet(time(13, 0))


def test_opens_at_in_the_plaintiffs_zone() -> None:
    # 02:00 UTC on 15 Jan = 21:00 in New York: quiet until 09:00 New York = 14:00 UTC.
    now = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
    assert QUIET.opens_at(now, NY) == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    # The same instant is 18:00 in Los Angeles: not quiet.
    assert QUIET.opens_at(now, ZoneInfo("America/Los_Angeles")) is None
    # 23:30 New York (evening part): opens the next morning.
    evening = datetime(2026, 1, 15, 23, 30, tzinfo=NY)
    assert QUIET.opens_at(evening, NY) == datetime(2026, 1, 16, 9, 0, tzinfo=NY)


def test_opens_at_across_a_dst_change() -> None:
    # The night clocks go forward in New York (8 March 2026): 09:00 is EDT (UTC-4).
    night = datetime(2026, 3, 8, 1, 30, tzinfo=NY)
    assert QUIET.opens_at(night, NY) == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_opens_at_is_never_in_the_past_and_is_outside_quiet_hours(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    opens = QUIET.opens_at(now, NY)
    if opens is None:
        assert not QUIET.is_quiet(now.astimezone(NY).time())
        return
    assert opens >= now
    assert (opens - now).total_seconds() <= 13 * 3600 + 3600  # at most the window, plus DST
    assert not QUIET.is_quiet(opens.astimezone(NY).time())


def test_an_unknown_zone_falls_back() -> None:
    zone, valid = zone_of("Mars/Olympus_Mons")
    assert not valid
    assert str(zone) == FALLBACK_ZONE
    assert zone_of("Europe/Paris") == (ZoneInfo("Europe/Paris"), True)
    assert zone_of("../../etc/passwd")[1] is False
