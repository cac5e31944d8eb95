"""The pure retention policy (restic's rules) over generated timelines (DST, month and year
boundaries) and hand-computed examples."""

import zoneinfo
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backups_app.errors import ConfigurationError
from backups_app.services.retention_policy import (
    PERIODS,
    Duration,
    Item,
    Policy,
    decide,
    decide_by_component,
    parse_duration,
)

UTC = timezone.utc
ZONES = [zoneinfo.ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")]
# Spring-forward and fall-back days, a month end and a year end whose ISO week straddles two years.
ANCHORS = [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
           datetime(2026, 1, 31, 23, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC)]


@st.composite
def timelines(draw):
    anchor = draw(st.sampled_from(ANCHORS))
    offsets = draw(st.lists(st.integers(-60 * 24 * 90, 60 * 24 * 90), min_size=1, max_size=40, unique=True))
    pinned = draw(st.sets(st.integers(0, len(offsets) - 1), max_size=3))
    return [Item(f"b{i}", anchor + timedelta(minutes=m), i in pinned) for i, m in enumerate(offsets)]


def kept(decisions):
    return {d.key for d in decisions if d.keep}


def reference_count_rule(items, rule, n, tz):
    """restic's count rule written out: the newest backup of each of the n newest periods, plus
    the oldest backup while counts are left."""
    ordered = sorted(items, key=lambda i: i.created_at, reverse=True)
    period = (lambda i, item: i) if rule == "last" else (lambda i, item: PERIODS[rule](item.created_at.astimezone(tz)))
    newest_of = {}
    for i, item in enumerate(ordered):
        newest_of.setdefault(period(i, item), item.key)
    periods = list(newest_of)
    keep = {newest_of[p] for p in periods[:n]}
    if len(periods) < n:
        keep.add(ordered[-1].key)
    return keep


NOW = datetime(2027, 6, 1, tzinfo=UTC)


@hsettings(max_examples=150, deadline=None)
@given(timelines(), st.sampled_from(["last", *PERIODS]), st.integers(1, 6), st.sampled_from(ZONES))
def test_count_rule_matches_restic(items, rule, n, tz):
    unpinned = [Item(i.key, i.created_at) for i in items]
    decisions = decide(unpinned, Policy(**{rule: n}), NOW, tz)
    assert kept(decisions) == reference_count_rule(unpinned, rule, n, tz)
    for d in decisions:
        assert d.keep == bool(d.reasons) and (d.keep or d.note)


@hsettings(max_examples=150, deadline=None)
@given(timelines(), st.sampled_from(ZONES), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 120), st.integers(0, 5))
def test_newest_and_pinned_always_kept_and_caps_hold(items, tz, daily, weekly, monthly, max_age, max_count):
    policy = Policy(daily=daily, weekly=weekly, monthly=monthly, max_age_days=max_age, max_count=max_count)
    decisions = decide(items, policy, NOW, tz)
    newest = max(items, key=lambda i: i.created_at)
    pinned = {i.key for i in items if i.pinned}
    assert {newest.key} | pinned <= kept(decisions)
    unpinned_kept = [d for d in decisions if d.keep and d.key not in pinned]
    if max_count:
        assert len(unpinned_kept) <= max(max_count, 1)
    if max_age:
        cutoff = NOW - timedelta(days=max_age)
        assert all(d.created_at >= cutoff for d in unpinned_kept if d.key != newest.key)


@hsettings(max_examples=150, deadline=None)
@given(timelines(), st.sampled_from(ZONES), st.sampled_from(["last", *PERIODS]), st.integers(1, 4),
       st.integers(1, 3))
def test_raising_a_count_never_deletes_more(items, tz, rule, n, extra):
    # (From an empty policy, which keeps everything, any rule deletes: hence n >= 1.)
    base = Policy(daily=1, **{rule: n}) if rule != "daily" else Policy(daily=n)
    more = Policy(**{**base.__dict__, rule: getattr(base, rule) + extra})
    assert kept(decide(items, base, NOW, tz)) <= kept(decide(items, more, NOW, tz))


@hsettings(max_examples=150, deadline=None)
@given(timelines(), st.sampled_from(ZONES), st.integers(1, 60))
def test_keep_within_counts_back_from_the_newest_backup(items, tz, days):
    decisions = decide(items, Policy(within=parse_duration(f"{days}d")), NOW, tz)
    latest = max(i.created_at for i in items)
    pinned = {i.key for i in items if i.pinned}
    for d in decisions:
        # Calendar days in tz: 'within 1d' across a DST change is 23 or 25 hours.
        inside = d.created_at > (latest.astimezone(tz).replace(tzinfo=None) - timedelta(days=days)).replace(
            tzinfo=tz).astimezone(UTC)
        assert d.keep == (inside or d.key in pinned or d.created_at == latest)


def at(text, tz=UTC):
    return datetime.fromisoformat(text).replace(tzinfo=tz) if "+" not in text else datetime.fromisoformat(text)


def test_daily_follows_the_local_calendar_across_spring_forward():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    items = [Item("mar27", at("2026-03-27T10:00")),
             Item("mar29_0030_cet", at("2026-03-28T23:30")),      # 00:30 CET on the 29th
             Item("mar29_0330_cest", at("2026-03-29T01:30")),     # 03:30 CEST: 02:00-03:00 did not exist
             Item("mar29_2330_cest", at("2026-03-29T21:30"))]
    assert kept(decide(items, Policy(daily=2), NOW, berlin)) == {"mar29_2330_cest", "mar27"}
    # The same instants by UTC days: 23:30Z on the 28th is its own day.
    assert kept(decide(items, Policy(daily=2), NOW, UTC)) == {"mar29_2330_cest", "mar29_0030_cet"}


def test_the_repeated_hour_of_fall_back_is_one_hourly_period():
    new_york = zoneinfo.ZoneInfo("America/New_York")
    items = [Item("0130_edt", at("2026-11-01T05:30")), Item("0130_est", at("2026-11-01T06:30")),
             Item("0300_est", at("2026-11-01T08:00")), Item("0000_edt", at("2026-11-01T04:00"))]
    decisions = decide(items, Policy(hourly=2), NOW, new_york)
    assert kept(decisions) == {"0300_est", "0130_est"}


def test_iso_weeks_straddle_the_year_end_while_months_and_years_do_not():
    items = [Item(k, at(f"{k}T02:00")) for k in ("2026-12-30", "2026-12-31", "2027-01-01", "2027-01-03",
                                                   "2027-01-04")]
    # 2026-12-28 .. 2027-01-03 is ISO week 2026-W53.
    assert kept(decide(items, Policy(weekly=2), NOW, UTC)) == {"2027-01-04", "2027-01-03"}
    assert kept(decide(items, Policy(monthly=2), NOW, UTC)) == {"2027-01-04", "2026-12-31"}
    assert kept(decide(items, Policy(yearly=2), NOW, UTC)) == {"2027-01-04", "2026-12-31"}


def test_within_months_uses_go_calendar_arithmetic():
    # restic: 2027-03-31 minus 1m is "2027-02-31", which normalises to 2027-03-03 (not clamped to 02-28).
    items = [Item("latest", at("2027-03-31T12:00")), Item("mar02", at("2027-03-02T12:00")),
             Item("mar04", at("2027-03-04T12:00")), Item("feb28", at("2027-02-28T12:00"))]
    decisions = decide(items, Policy(within=parse_duration("1m")), NOW, UTC)
    assert kept(decisions) == {"latest", "mar04"}


def test_seed_002_policy_over_a_year_of_daily_backups():
    items = [Item(f"{day:%Y-%m-%d}", datetime(2026, 1, 1, 2, tzinfo=UTC) + timedelta(days=n))
             for n, day in enumerate(datetime(2026, 1, 1) + timedelta(days=d) for d in range(365))]
    policy = Policy(within_daily=parse_duration("7d"), within_weekly=parse_duration("30d"),
                    within_monthly=parse_duration("365d"))
    decisions = decide(items, policy, NOW, UTC)
    daily = {f"2026-12-{d}" for d in range(25, 32)}
    weekly = {"2026-12-31", "2026-12-27", "2026-12-20", "2026-12-13", "2026-12-06"}
    monthly = {"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30", "2026-07-31",
               "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31"}
    assert kept(decisions) == daily | weekly | monthly
    assert len(daily | weekly | monthly) == 21
    reasons = {d.key: d.reasons for d in decisions}
    assert reasons["2026-12-31"] == ["newest", "daily within 7d", "weekly within 30d", "monthly within 365d"]
    assert reasons["2026-06-30"] == ["monthly within 365d"]


def test_caps_explain_themselves():
    items = [Item(f"d{n}", NOW - timedelta(days=n)) for n in range(12)]
    decisions = {d.key: d for d in decide(items, Policy(daily=-1, max_age_days=9, max_count=5), NOW, UTC)}
    assert [k for k, d in decisions.items() if d.keep] == ["d0", "d1", "d2", "d3", "d4"]
    assert decisions["d6"].summary == "will be deleted: beyond the 5 newest (BACKUP_MAX_COUNT)"
    assert decisions["d10"].summary == "will be deleted: older than 9 days (BACKUP_RETENTION_DAYS)"
    assert decisions["d2"].summary == "daily #3"


def test_an_empty_policy_keeps_everything():
    items = [Item(f"d{n}", NOW - timedelta(days=n)) for n in range(3)]
    assert kept(decide(items, Policy(), NOW, UTC)) == {"d0", "d1", "d2"}


@pytest.mark.parametrize("text", ["7", "1w", "d7", "7d 3h", "-1d"])
def test_bad_durations_name_the_setting(text):
    with pytest.raises(ConfigurationError, match="BACKUP_KEEP_WITHIN.*units y, m, d, h"):
        parse_duration(text, "BACKUP_KEEP_WITHIN")


# --- Per component: every store keeps its own newest, slots and caps -----------------------------

STORES = ["postgres", "uploads", "sqlite", "redis"]


@st.composite
def mixed_histories(draw):
    """Backups of random store subsets (a full one, then some of one store only, ...), some damaged
    (their latest verification failed), some pinned."""
    anchor = draw(st.sampled_from(ANCHORS))
    offsets = draw(st.lists(st.integers(-60 * 24 * 60, 60 * 24 * 60), min_size=1, max_size=30, unique=True))
    return [Item(f"b{i}", anchor + timedelta(minutes=m), draw(st.booleans()) and draw(st.booleans()),
                 tuple(draw(st.lists(st.sampled_from(STORES), min_size=1, max_size=4, unique=True))),
                 damaged=draw(st.integers(0, 4)) == 0)
            for i, m in enumerate(offsets)]


@st.composite
def policies(draw):
    counts = {name: draw(st.integers(-1, 3)) for name in ("last", *PERIODS)}
    within = draw(st.sampled_from(["", "12h", "3d", "2m"]))
    return Policy(**counts, within=parse_duration(within) if within else Duration(),
                  max_age_days=draw(st.integers(0, 90)), max_count=draw(st.integers(0, 4)))


def newest_sound(items, store):
    sound = [i for i in items if store in i.components and not i.damaged]
    return max(sound, key=lambda i: i.created_at).key if sound else None


@hsettings(max_examples=300, deadline=None)
@given(mixed_histories(), policies(), st.sampled_from(ZONES))
def test_every_store_keeps_its_newest_sound_backup_and_its_own_rules(items, policy, tz):
    decisions = {d.key: d for d in decide_by_component(items, policy, NOW, tz)}
    for store in STORES:
        newest = newest_sound(items, store)
        if newest is not None:
            assert decisions[newest].keep and "newest" in decisions[newest].kept_for[store]
        # Each store's own timeline, decided alone, is exactly what the store keeps the backup for.
        own = [i for i in items if store in i.components]
        for d in decide(own, policy, NOW, tz):
            assert (store in decisions[d.key].kept_for) == any(r != "pinned" for r in d.reasons)
            if not d.keep:
                assert d.key not in {k for k, dd in decisions.items() if store in dd.kept_for}
    for item in items:
        d = decisions[item.key]
        assert d.keep == (item.pinned or bool(d.kept_for)) and (d.keep or d.note)
        assert set(d.kept_for) <= set(item.components)
        assert not any("newest" in why for why in d.kept_for.values()) or not item.damaged


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(STORES), min_size=1, max_size=4, unique=True),
                          st.integers(1, 60 * 24 * 3), st.booleans()), min_size=1, max_size=25),
       policies(), st.sampled_from(ZONES))
def test_after_every_prune_each_store_still_has_its_newest_sound_backup(history, policy, tz):
    """A history grows one backup at a time and is pruned after each: whatever was deleted, every
    store keeps its newest backup that is not damaged."""
    taken, stored, moment = [], [], ANCHORS[0]
    for n, (stores, gap, damaged) in enumerate(history):
        moment += timedelta(minutes=gap)
        taken.append(Item(f"b{n}", moment, components=tuple(stores), damaged=damaged))
        stored.append(taken[-1])
        kept_now = {d.key for d in decide_by_component(stored, policy, moment, tz) if d.keep}
        stored = [i for i in stored if i.key in kept_now]
        for store in STORES:
            assert newest_sound(stored, store) == newest_sound(taken, store)


def test_a_full_backup_is_not_pushed_out_by_eight_backups_of_one_store():
    full = Item("full", NOW - timedelta(days=9), components=("postgres", "uploads", "sqlite"))
    sqlite_only = [Item(f"s{n}", NOW - timedelta(days=8 - n), components=("sqlite",)) for n in range(8)]
    decisions = {d.key: d for d in decide_by_component([full, *sqlite_only], Policy(last=-1, max_count=3), NOW,
                                                                 UTC)}
    assert decisions["full"].keep and set(decisions["full"].kept_for) == {"postgres", "uploads"}
    assert decisions["full"].summary == "postgres, uploads: newest, last #1"
    assert [k for k, d in decisions.items() if d.keep] == ["s7", "s6", "s5", "full"]
    assert decisions["s4"].summary == "will be deleted: beyond the 3 newest (BACKUP_MAX_COUNT)"


def test_a_damaged_backup_is_newest_for_nothing():
    good = Item("good", NOW - timedelta(days=2), components=("uploads",))
    damaged = Item("damaged", NOW - timedelta(days=1), components=("uploads",), damaged=True)
    decisions = {d.key: d for d in decide_by_component([good, damaged], Policy(last=1, max_count=1), NOW, UTC)}
    assert decisions["good"].kept_for == {"uploads": ["newest"]}
    assert decisions["damaged"].summary == "uploads: last #1"  # kept by its slot, not as the newest copy
