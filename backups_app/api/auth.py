"""Who may call the API: staff users, by bearer token or by browser session (with CSRF on
writes), holding the permission of the action. No credentials → 401; a known user who is not
staff or lacks the permission → 403."""

from ninja.errors import AuthorizationError, HttpError
from ninja.security import HttpBearer, SessionAuth
from ninja.utils import check_csrf

from backups_app.services import tokens


class _StaffWithPermission:
    def __init__(self, permission):
        self.permission = permission
        super().__init__()

    def permit(self, user):
        if user is None:
            return None
        if not user.is_staff:
            raise AuthorizationError(message="The API is for staff users; ask an administrator to set is_staff.")
        if not user.has_perm(self.permission):
            raise AuthorizationError(message=f"This needs the permission {self.permission}.")
        return user


class BearerToken(_StaffWithPermission, HttpBearer):
    """``Authorization: Bearer <token>`` (``manage.py create_api_token`` or the admin)."""

    def authenticate(self, request, token):
        return self.permit(tokens.user_for(token))


class StaffSession(_StaffWithPermission, SessionAuth):
    """The admin's login session. Writes need the CSRF token (``X-CSRFToken`` header), as Django
    forms do; an anonymous request gets 401, not a CSRF error."""

    def __call__(self, request):
        if not request.user.is_authenticated:
            return None
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header.")
        return self.permit(request.user)


def staff_with(permission):
    return [BearerToken(permission), StaffSession(permission)]
