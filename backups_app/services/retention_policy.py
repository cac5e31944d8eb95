"""Which backups to keep, as a pure function: restic's ``forget`` policy (keep-last/hourly/daily/
weekly/monthly/yearly and keep-within durations), then seed 000's caps (BACKUP_RETENTION_DAYS,
BACKUP_MAX_COUNT). ``decide()`` works over one timeline of (key, created_at, pinned, damaged)
items, ``decide_by_component()`` over one timeline per component, so both are tested over
generated histories; ``services/retention.py`` applies them to the stored backups.

Rules, in order:
0. Per component: every component has its own timeline (the backups that hold it), with its own
   newest, its own slots and its own caps; a backup is kept while any of its components keeps it.
   A newer backup of one store never pushes out the newest copy of another.
1. Only completed backups are considered; running and failed runs are never touched here.
2. Pinned backups and the newest completed backup that is not damaged (its latest verification
   failed) are always kept. A damaged backup is not "newest" for anything, but other rules may
   keep it: a verification that failed because storage was briefly down must not delete it.
3. The restic policy. As in restic: backups are walked newest first; a count rule keeps a backup
   when its period (local day, ISO week, month, ...) differs from the previous backup that rule
   kept, and, while the rule still has counts left, also the oldest backup; ``-1`` means
   unlimited; keep-within durations (``7d``, ``1y6m``, ``12h``) count back from the newest
   backup, not from now, so a stalled schedule never empties the store. An empty policy keeps all.
4. The caps remove what rule 3 kept when it is older than BACKUP_RETENTION_DAYS or beyond the
   BACKUP_MAX_COUNT newest unpinned backups (0 switches a cap off).
Safety backups (taken before a restore) follow their own rule: kept BACKUP_SAFETY_RETENTION_DAYS.
Periods are taken in BACKUP_RETENTION_TIME_ZONE (default: TIME_ZONE), so "daily" means the
operator's calendar day, across DST changes.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from backups_app.errors import ConfigurationError

DURATION_RE = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$")

# (name, period of a local datetime); "last" gives every backup its own period.
PERIODS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    text: str = ""

    def __bool__(self):
        return any((self.years, self.months, self.days, self.hours))

    def before(self, moment, tz):
        """``moment`` minus this duration, by the calendar in ``tz`` (Go's AddDate, as restic)."""
        local = moment.astimezone(tz)
        month_index = local.year * 12 + local.month - 1 - self.years * 12 - self.months
        first = local.replace(year=month_index // 12, month=month_index % 12 + 1, day=1, tzinfo=None)
        wall = first + timedelta(days=local.day - 1 - self.days)  # overflowing days roll over, as in Go
        return wall.replace(tzinfo=tz).astimezone(dt_timezone.utc) - timedelta(hours=self.hours)


def parse_duration(text, setting="duration"):
    text = (text or "").strip()
    match = DURATION_RE.match(text)
    if not match:
        raise ConfigurationError(f"{setting}={text!r} is not a duration; use restic's form with units "
                                 "y, m, d, h, e.g. 7d, 1y6m, 36h.")
    years, months, days, hours = (int(g or 0) for g in match.groups())
    return Duration(years, months, days, hours, text)


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = Duration()
    within_hourly: Duration = Duration()
    within_daily: Duration = Duration()
    within_weekly: Duration = Duration()
    within_monthly: Duration = Duration()
    within_yearly: Duration = Duration()
    max_age_days: int = 0
    max_count: int = 0

    def counts(self):
        return {"last": self.last, **{name: getattr(self, name) for name in PERIODS}}

    def withins(self):
        return {name: getattr(self, f"within_{name}") for name in PERIODS}

    def empty(self):
        return not any(self.counts().values()) and not self.within and not any(self.withins().values())


@dataclass(frozen=True)
class Item:
    key: str
    created_at: datetime
    pinned: bool = False
    components: tuple = ()
    damaged: bool = False  # its latest verification failed


@dataclass
class Decision:
    key: str
    created_at: datetime
    keep: bool
    reasons: list = field(default_factory=list)  # why it is kept, e.g. ["daily #3", "uploads: monthly #1"]
    note: str = ""  # why it goes, when it goes
    kept_for: dict = field(default_factory=dict)  # {component: its reasons}, for the components that keep it

    @property
    def summary(self):
        """``pinned; sqlite, uploads: newest, daily #1; postgres: monthly #2``"""
        if not self.keep:
            return f"will be deleted: {self.note}"
        if not self.kept_for:
            return ", ".join(self.reasons)
        groups = {}
        for name, why in self.kept_for.items():
            groups.setdefault(", ".join(why), []).append(name)
        pinned = ["pinned"] if "pinned" in self.reasons else []
        return "; ".join(pinned + [f"{', '.join(names)}: {why}" for why, names in groups.items()])


def decide(items, policy, now, tz):
    """One Decision per item, newest first. ``now`` is only used for the age cap and to ignore
    backups dated in the future when finding the newest one."""
    ordered = sorted(items, key=lambda i: i.created_at, reverse=True)
    if not ordered:
        return []
    newest = next((i.key for i in ordered if not i.damaged), None)
    past = [i.created_at for i in ordered if i.created_at <= now]
    latest = max(past) if past else now
    remaining = dict(policy.counts())
    last_period = {name: None for name in remaining}
    kept_by = {name: 0 for name in remaining}
    within_last = {name: None for name in PERIODS}
    decisions = []
    for index, item in enumerate(ordered):
        local = item.created_at.astimezone(tz)
        reasons = ["newest"] if item.key == newest else []
        if item.pinned:
            reasons.append("pinned")
        if policy.empty():
            reasons.append("policy is empty")
        if policy.within and item.created_at > policy.within.before(latest, tz):
            reasons.append(f"within {policy.within.text}")
        oldest = index == len(ordered) - 1
        for name, left in remaining.items():
            if left == 0:
                continue
            period = index if name == "last" else PERIODS[name](local)
            if period != last_period[name] or oldest:
                last_period[name] = period
                if left > 0:
                    remaining[name] -= 1
                kept_by[name] += 1
                reasons.append(f"{name} #{kept_by[name]}")
        for name, duration in policy.withins().items():
            if duration and item.created_at > duration.before(latest, tz):
                period = PERIODS[name](local)
                if period != within_last[name]:
                    within_last[name] = period
                    reasons.append(f"{name} within {duration.text}")
        decisions.append(Decision(item.key, item.created_at, keep=bool(reasons), reasons=reasons,
                                  note="" if reasons else "no retention rule keeps it"))
    _apply_caps(decisions, newest, {i.key for i in ordered if i.pinned}, policy, now)
    return decisions


def decide_by_component(items, policy, now, tz):
    """One Decision per item, newest first: ``decide()`` over each component's own timeline, and
    a backup kept while any of its components keeps it (``kept_for`` names them, with their reasons)."""
    timelines = {}
    for item in items:
        for name in dict.fromkeys(item.components):
            timelines.setdefault(name, []).append(item)
    verdicts = {name: {d.key: d for d in decide(members, policy, now, tz)} for name, members in timelines.items()}
    decisions = []
    for item in sorted(items, key=lambda i: i.created_at, reverse=True):
        own = {name: verdicts[name][item.key] for name in dict.fromkeys(item.components)}
        reasons = {name: [r for r in d.reasons if r != "pinned"] for name, d in own.items()}
        kept_for = {name: why for name, why in sorted(reasons.items()) if why}
        flat = (["pinned"] if item.pinned else []) + [f"{name}: {r}" for name, why in kept_for.items() for r in why]
        notes = list(dict.fromkeys(d.note for d in own.values())) or ["it holds no component"]
        note = "" if flat else notes[0] if len(notes) == 1 else "; ".join(f"{n}: {d.note}" for n, d in own.items())
        decisions.append(Decision(item.key, item.created_at, bool(flat), flat, note, kept_for))
    return decisions


def _apply_caps(decisions, newest, pinned, policy, now):
    """Seed 000's caps; the newest (not damaged) and pinned backups are exempt."""
    exempt = {newest} | pinned
    if policy.max_age_days > 0:
        cutoff = now - timedelta(days=policy.max_age_days)
        for d in decisions:
            if d.keep and d.key not in exempt and d.created_at < cutoff:
                d.keep, d.note = False, f"older than {policy.max_age_days} days (BACKUP_RETENTION_DAYS)"
    if policy.max_count > 0:
        kept = 0
        for d in decisions:
            if d.keep and d.key not in pinned:
                kept += 1
                if kept > policy.max_count and d.key not in exempt:
                    d.keep, d.note = False, f"beyond the {policy.max_count} newest (BACKUP_MAX_COUNT)"
    for d in decisions:
        if not d.keep:
            d.reasons = []
