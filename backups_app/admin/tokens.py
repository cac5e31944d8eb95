"""Admin for API tokens: list, create (the token is shown once, in the success message) and revoke.
A token carries its user's rights, so only superusers mint or revoke tokens for others; everyone
else sees, creates and revokes their own."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from backups_app.models import ApiToken
from backups_app.services import tokens


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    actions = ["revoke_tokens"]
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")

    def get_queryset(self, request):
        tokens_shown = super().get_queryset(request)
        return tokens_shown if request.user.is_superuser else tokens_shown.filter(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (("user",) if obj else ())

    def get_changeform_initial_data(self, request):
        return {"user": request.user.pk, **super().get_changeform_initial_data(request)}  # a token for oneself

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":  # tokens are for active staff only
            staff = get_user_model().objects.filter(is_staff=True, is_active=True)
            kwargs["queryset"] = staff if request.user.is_superuser else staff.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        if not (request.user.is_superuser or obj.user_id == request.user.pk):
            raise PermissionDenied("Only superusers may create API tokens for other users.")
        record, token = tokens.create_token(obj.user, obj.name, request=request)
        obj.pk = record.pk
        self.message_user(request, f"Token for {record.user}: {token} — copy it now, it is not shown again.",
                          messages.WARNING)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the record stays as history

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        self.message_user(request, f"Revoked {tokens.revoke(queryset, request=request)} token(s).")
