from django.urls import URLPattern, URLResolver, path

from records.portal import audit_views, console_views

# The NHS number is typed into a POST body; a patient's report is named by their opaque public id.
urlpatterns: list[URLPattern | URLResolver] = [
    path("access-report/", audit_views.access_report_find, name="access-report"),
    path("access-report/<uuid:public_id>/", audit_views.access_report_patient, name="access-report-patient"),
    path(
        "access-report/<uuid:public_id>/report.pdf",
        audit_views.access_report_pdf_download,
        name="access-report-pdf",
    ),
    path(
        "access-report/<uuid:public_id>/report.csv",
        audit_views.access_report_csv_download,
        name="access-report-csv",
    ),
    path("changes/", audit_views.change_history, name="change-history"),
    # The console: a search is POSTed, kept in the session, and its pages and download named by a random token.
    path("", console_views.console_home, name="audit-console"),
    path("events/", console_views.event_search, name="audit-events"),
    path("events/export.csv", console_views.event_search_export, name="audit-events-export"),
    # A user id is not patient data.
    path("users/<int:user_id>/", console_views.user_timeline, name="audit-user-timeline"),
]
