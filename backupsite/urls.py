from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from backups_app.api.monitoring import metrics_view
from backups_app.api.views import api as system_api

admin.autodiscover()  # SimpleAdminConfig (settings.py): the admin's modules load with the URLs

handler403 = "backups_app.admin.base.permission_denied"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/system/", system_api.urls),
]
