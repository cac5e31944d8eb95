"""``{% load backups_dashboard %}``: ``{% backup_dashboard %}`` renders the admin index's dashboard
(the data comes from services/dashboard.py) and ``{{ sizes|sparkline }}`` draws a list of sizes as
a small inline SVG line, drawn by the server (no script)."""

from django import template
from django.utils.html import format_html

from backups_app import formatting
from backups_app.services import dashboard

register = template.Library()

WIDTH, HEIGHT, MARGIN = 120, 24, 2


@register.inclusion_tag("admin/backups_app/dashboard.html", takes_context=True)
def backup_dashboard(context):
    return {**dashboard.gather(), "perms": context["perms"]}


@register.filter(is_safe=True)
def sparkline(sizes):
    """The sizes (oldest first) as a line; the newest one is a dot. Empty for no sizes."""
    if not sizes:
        return ""
    low, high = min(sizes), max(sizes)
    step = (WIDTH - 2 * MARGIN) / max(len(sizes) - 1, 1)

    def y(size):  # equal sizes make a flat line in the middle
        share = (size - low) / (high - low) if high > low else 0.5
        return round(HEIGHT - MARGIN - share * (HEIGHT - 2 * MARGIN), 1)

    points = [(round(MARGIN + n * step, 1), y(size)) for n, size in enumerate(sizes)]
    title = (f"{len(sizes)} backup(s): {formatting.human_size(sizes[0])} → {formatting.human_size(sizes[-1])}"
             f" (min {formatting.human_size(low)}, max {formatting.human_size(high)})")
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img"><title>{}</title>'
        '<polyline points="{}" fill="none" stroke="#417690" stroke-width="1.5"/>'
        '<circle cx="{}" cy="{}" r="2" fill="#417690"/></svg>',
        WIDTH, HEIGHT, WIDTH, HEIGHT, title, " ".join(f"{x},{y}" for x, y in points), *points[-1])
