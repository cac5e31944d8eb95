"""``postgres.tables``: which entries of a custom-format archive restore only some tables, with
their sequences, indexes, constraints, defaults, triggers, comments and grants.

It reads ``pg_restore --list --verbose`` (every entry followed by ``;	depends on: <ids>``) and
writes the list that ``pg_restore --use-list`` restores, in the archive's order:

- the selected tables (``schema.name``, or ``name`` for schema public);
- every entry that depends on one of them, directly or through another such entry (their data,
  indexes, constraints, sequences, defaults, triggers, comments, grants, policies, partitions, and
  the views over them, which pg_restore ``--clean`` must drop to drop the table);
- into a database that already holds them (``in_place``): that is all, pg_restore ``--clean`` drops and
  recreates them, foreign keys into or out of other tables included (they exist there);
- into a new or empty database: also what those entries need that is no table (schemas, types,
  functions, extensions), while an entry that needs a table not selected (a foreign key into it) is
  left out and named.
"""

import re

ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
DEPENDS = re.compile(r"^;\s*depends on:(.*)$")
RELATION, CONSTRAINT = 1259, 2606  # pg_class, pg_constraint
ALWAYS = ("ENCODING ", "STDSTRINGS ", "SEARCHPATH ")


def parse(lines):
    """[{"id", "catalog", "rest", "deps", "line"}] from ``pg_restore --list --verbose`` output."""
    entries = []
    for line in lines:
        match = ENTRY.match(line)
        if match:
            entries.append({"id": int(match.group(1)), "catalog": int(match.group(2)), "rest": match.group(4),
                            "deps": [], "line": line})
            continue
        depends = DEPENDS.match(line)
        if depends and entries:
            entries[-1]["deps"] += [int(d) for d in depends.group(1).split()]
    return entries


def table_name(entry):
    """``schema.name`` (``name`` for public) of a TABLE entry, else None."""
    if entry["catalog"] != RELATION or not entry["rest"].startswith("TABLE "):
        return None
    schema, _, rest = entry["rest"][len("TABLE "):].partition(" ")
    name = rest.rpartition(" ")[0] or rest
    return name if schema == "public" else f"{schema}.{name}"


def _label(entry):
    return entry["rest"].rpartition(" ")[0] or entry["rest"]


def _is_table_like(entry):
    """A relation, constraint or table data: something a fresh database has only if selected."""
    rest = entry["rest"]
    return entry["catalog"] in (RELATION, CONSTRAINT) or rest.startswith(("TABLE DATA ", "MATERIALIZED VIEW DATA "))


def select(lines, tables, in_place):
    """{"lines": the use-list, "missing": selected tables not in the archive, "left_out": [why an
    entry is left out]} for restoring ``tables`` (``schema.name`` or ``name``)."""
    entries = parse(lines)
    by_id = {e["id"]: e for e in entries}
    wanted = {t.removeprefix("public."): t for t in tables}
    chosen = {e["id"] for e in entries if table_name(e) in wanted}
    found = {table_name(by_id[i]) for i in chosen}
    missing = [given for name, given in wanted.items() if name not in found]
    left_out = {}
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry["id"] in chosen or not set(entry["deps"]) & chosen:
                continue
            needs = [by_id[d] for d in entry["deps"] if d in by_id and d not in chosen and _is_table_like(by_id[d])
                     and not by_id[d]["rest"].startswith("SEQUENCE ")]
            if needs and not in_place:
                left_out[entry["id"]] = f"{_label(entry)} (needs {', '.join(_label(n) for n in needs)}: not restored)"
                continue
            chosen.add(entry["id"])
            left_out.pop(entry["id"], None)
            # Sequences a default or an OWNED BY uses come along (older dumps do not make them depend on the table).
            chosen |= {d for d in entry["deps"] if d in by_id and by_id[d]["rest"].startswith("SEQUENCE ")
                       and by_id[d]["catalog"] == RELATION}
            changed = True
    if not in_place:
        pending = list(chosen)
        while pending:
            for dep in by_id[pending.pop()]["deps"]:
                if dep in by_id and dep not in chosen and not _is_table_like(by_id[dep]) \
                        and not by_id[dep]["rest"].startswith("DATABASE "):
                    chosen.add(dep)
                    pending.append(dep)
    use = [e["line"] for e in entries if e["id"] in chosen or e["rest"].startswith(ALWAYS)]
    return {"lines": use, "missing": missing, "left_out": [left_out[i] for i in sorted(left_out)]}
