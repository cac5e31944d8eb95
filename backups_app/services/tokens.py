"""API tokens: random, shown once, stored as SHA-256 (the tokens are long random strings, so a fast
hash is enough; a leaked database gives no usable token)."""

import hashlib
import secrets

from django.utils import timezone

from backups_app.errors import BackupError
from backups_app.models import ApiToken
from backups_app.services import audit

TOKEN_PREFIX = "bk_"


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user, name="", by=None, request=None):
    """``(ApiToken, token)``; the token is not stored anywhere, so show it now. Audited as made
    ``by`` that user (default: the request's) from the request's address."""
    if not (user.is_active and user.is_staff):
        raise BackupError(f"User {user.get_username()!r} is not an active staff user; API tokens are for staff "
                          "only (set is_staff in the admin first).")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(user=user, name=name, prefix=token[:10], key_hash=hash_token(token))
    audit.record("token.create", user=by, request=request, target=f"{record.prefix}… ({user.get_username()})")
    return record, token


def user_for(token):
    """The active user owning an unrevoked ``token``, or None."""
    record = (ApiToken.objects.select_related("user")
              .filter(key_hash=hash_token(token), revoked_at__isnull=True, user__is_active=True).first())
    if record is None:
        return None
    ApiToken.objects.filter(pk=record.pk).update(last_used_at=timezone.now())
    return record.user


def request_has_valid_token(request):
    """For /metrics and health (BACKUP_MONITORING_AUTHENTICATORS): a valid staff token in
    ``Authorization: Bearer``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    user = user_for(token.strip())
    return bool(user and user.is_staff)


def revoke(tokens, by=None, request=None):
    """Revoke a queryset of tokens; returns how many were still active."""
    names = [f"{t.prefix}… ({t.user.get_username()})" for t in tokens]
    revoked = tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit.record("token.revoke", user=by, request=request, target=", ".join(names))
    return revoked
