from django.urls import path

from backups_app import views_ops

urlpatterns = [
    path("api/system/health", views_ops.health_view, name="system-health"),
    path("metrics", views_ops.metrics_view, name="metrics"),
]
