"""The read-only verification history (quick checks and restore rehearsals), like the other runs."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from backups_app.admin.base import RunAdmin
from backups_app.formatting import format_duration
from backups_app.models import Verification
from backups_app.services.verification import recall_text


@admin.register(Verification)
class VerificationAdmin(RunAdmin):
    list_display = ("source_backup_id", "kind", "status_badge", "created", "took", "trigger", "summary")
    list_filter = ("kind", "status", "trigger")
    search_fields = ("source_backup_id",)
    fields = ("source_backup_id", "kind", "status_badge", "trigger", "created_by", "created_at", "started_at",
              "finished_at", "took", "host", "worker", "progress_table", "results_table", "error", "log_text")
    readonly_fields = fields

    @admin.display(description="result")
    def summary(self, obj):
        return ", ".join(f"{name}: {self._state(result)}" for name, result in obj.results.items())

    @staticmethod
    def _state(result):
        if result.get("skipped"):
            return "skipped"
        state = "ok" if result["ok"] else "FAILED"
        return f"{state} in {format_duration(result['seconds'])}" if "seconds" in result else state

    @staticmethod
    def _counts(result):
        counts = result.get("counts")
        return ", ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, dict) else ""

    @staticmethod
    def _detail(result):
        if "exit_status" in result:  # BACKUP_PROBE_COMMAND after a restore
            return f"{result['command']} exited with {result['exit_status']}: {result['output'][-500:]}"
        return result.get("error") or result.get("note") or ""

    @admin.display(description="results")
    def results_table(self, obj):
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((name, self._state(r), self._counts(r), recall_text(r), self._detail(r))
             for name, r in obj.results.items()),
        )
        return format_html("<table><tr><th>component / artifact</th><th>result (RTO)</th><th>counts</th>"
                           "<th>probes</th><th>detail</th></tr>{}</table>", rows)
