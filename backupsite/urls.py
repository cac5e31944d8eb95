from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from backups_app.api.views import api as system_api

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("backups_app.urls_ops")),
    path("api/system/", system_api.urls),
]
