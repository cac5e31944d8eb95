"""Readable tables for the admin's JSON fields (counts, restore plans, audit details): sizes in
human units with the exact bytes on hover, the one date format, and the raw JSON kept below in a
collapsed <details> "raw" section."""

import json

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join

from backups_app import formatting
from backups_app.services import plan_table
from backups_app.services.restores import flatten_counts


def raw_json(value):
    """The value as JSON, collapsed: for whoever needs the exact record."""
    return format_html('<details class="raw"><summary>raw</summary><pre style="margin:0">{}</pre></details>',
                       json.dumps(value, indent=2, ensure_ascii=False, default=str))


def readable_value(key, value):
    """A value as a person reads it: sizes (keys ending in bytes or size) in human units, ISO dates
    in the one format, lists joined; the rest as it is."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: formatting.NOTHING}[value]
    if isinstance(value, int) and key.rsplit(".", 1)[-1].endswith(("bytes", "size")):
        return formatting.size_html(value)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or formatting.NOTHING
    if isinstance(value, str) and len(value) >= 19 and formatting.as_datetime(value) is not None:
        return formatting.format_date(value)
    return value


def with_raw(table, value):
    return format_html("{}{}", table, raw_json(value))


def key_value_table(mapping, css_class="details-table"):
    """{key: value} (nested ones flattened to "a.b") as a two-column table, the raw JSON below."""
    if not mapping:
        return formatting.NOTHING
    flat = flatten_counts("", mapping)
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                            ((key.removeprefix("."), readable_value(key, value)) for key, value in flat.items()))
    return with_raw(format_html('<table class="{}"><tbody>{}</tbody></table>', css_class, rows), mapping)


def counts_table(components):
    """A backup's counts: {component: counts} as rows of component, what, count."""
    rows = [(name if index == 0 else "", key.removeprefix(f"{name}."), readable_value(key, value))
            for name, counts in components.items()
            for index, (key, value) in enumerate(flatten_counts(name, counts).items())]
    if not rows:
        return formatting.NOTHING
    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    return with_raw(format_html('<table class="counts-table"><thead><tr><th>component</th><th>what</th>'
                                "<th>count</th></tr></thead><tbody>{}</tbody></table>", body), components)


def plan_with_raw(plan, live_label="live now"):
    """The restore plan's table (services/plan_table.py): per component what happens, its counts in
    the backup vs live (``live_label``: when they were read), differences highlighted; the whole
    plan raw below."""
    table = render_to_string("admin/backups_app/plan_table.html",
                             {"parts": plan_table.components(plan), "live_label": live_label})
    return with_raw(table, plan)
