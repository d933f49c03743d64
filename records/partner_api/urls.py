"""The partner API, under /api/. Every name here is on tests/test_urls.py's PARTNER_API list."""

from django.urls import path

from records.partner_api import views as api

app_name = "api"

urlpatterns = [
    # `str`, not `slug`: any code gets the same 401 before authentication, so codes cannot be probed.
    path("feeds/<str:code>/batches/", api.BatchPushView.as_view(), name="batch-push"),
    path("batches/<uuid:public_id>/", api.BatchDetailView.as_view(), name="batch-detail"),
]
