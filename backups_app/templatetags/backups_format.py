"""``{% load backups_format %}``: {{ n|human_size }}, {{ n|size_html }} (exact bytes on hover),
{{ when|date_text }} (the one date format) and {{ seconds|duration }}; see backups_app/formatting.py."""

from django import template

from backups_app import formatting

register = template.Library()

register.filter("human_size", formatting.human_size)
register.filter("exact_bytes", formatting.exact_bytes)
register.filter("size_html", formatting.size_html, is_safe=True)
register.filter("date_text", formatting.format_date)
register.filter("duration", formatting.format_duration)
