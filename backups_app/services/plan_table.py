"""The restore plan (``restores.plan_restore``) as one table, the same on every surface (the admin's
plan and restore pages, ``manage.py restore --dry-run``, ``restore.sh --dry-run``): per component
what happens to it, and its counts in the backup next to the live ones, differences marked."""

from dataclasses import dataclass

from backups_app import formatting
from backups_app.services.restores import flatten_counts


@dataclass(frozen=True)
class CountRow:
    what: str
    backup: object  # None: the backup has no such count
    live: object  # None: the live store has no such count

    @property
    def differs(self):
        return self.backup != self.live

    @property
    def is_size(self):
        return self.what.rsplit(".", 1)[-1] == "bytes"

    def text(self, value):
        if value is None:
            return formatting.NOTHING
        return formatting.human_size(value) if self.is_size else str(value)


@dataclass(frozen=True)
class ComponentPlan:
    name: str
    outcome: str
    rows: list


def outcome(target):
    """What the restore does to one component, from the plan's ``targets`` entry."""
    where = target.get("target")
    if not target.get("live", True):
        return f"side by side: {where}"
    if target.get("safety_backup"):
        return f"replaced from the backup{': ' + where if where else ''}; a safety backup is taken first"
    return where or "nothing is written"


def components(plan):
    """[ComponentPlan] in the plan's order; a component without counts still gets one row."""
    result = []
    for name in plan["components"]:
        sides = plan.get("counts", {}).get(name, {})
        live, stored = ({key.removeprefix(f"{name}."): value
                         for key, value in flatten_counts(name, sides.get(side) or {}).items()}
                        for side in ("live", "backup"))
        rows = [CountRow(what, stored.get(what), live.get(what)) for what in sorted(set(live) | set(stored))]
        result.append(ComponentPlan(name, outcome(plan.get("targets", {}).get(name, {})), rows))
    return result


def checksum_text(artifact):
    """A plan's artifact: verified, failed (why), or not read yet (a confirmation's plan: the restore
    verifies every checksum before it changes anything)."""
    if artifact.get("verified"):
        return "✔ verified"
    if artifact.get("error"):
        return f"✘ {artifact['error']}"
    return "verified when the restore starts"


COUNT_HEADER = ("COMPONENT", "WHAT", "IN BACKUP", "LIVE NOW", "", "WHAT HAPPENS")
ARTIFACT_HEADER = ("ARTIFACT", "SIZE", "CHECKSUM")


def plan_text(plan):
    """The plan for a terminal: the counts table, the artifacts table, then the warnings."""
    parts, counts = components(plan), []
    for part in parts:
        for index, row in enumerate(part.rows or [CountRow("—", None, None)]):
            first = index == 0
            counts.append((part.name if first else "", row.what, row.text(row.backup), row.text(row.live),
                           "≠" if row.differs else "", part.outcome if first else ""))
    artifacts = [(name, formatting.human_size(a.get("size")), checksum_text(a))
                 for name, a in plan.get("artifacts", {}).items()]
    lines = [f"Restore plan for {plan['backup_id']} (≠: the live data differs from the backup)", "",
             formatting.text_table(COUNT_HEADER, counts), "", formatting.text_table(ARTIFACT_HEADER, artifacts)]
    live = [p.name for p in parts if plan.get("targets", {}).get(p.name, {}).get("live", True)]
    if plan.get("ok") and live:
        lines += ["", f"⚠ {plan['warning']}: {', '.join(live)}."]
    lines += [f"problem: {p}" for p in plan.get("problems", [])]
    return "\n".join(lines)
