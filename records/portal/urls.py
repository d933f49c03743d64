from django.urls import include, path

from records.portal import documents, sign_in_views, timeline, views
from records.portal.audit_urls import urlpatterns as audit_urls
from records.portal.objections_urls import urlpatterns as objection_urls
from records.portal.subject_access_urls import urlpatterns as subject_access_urls

app_name = "records"

urlpatterns = [
    path("", views.home, name="home"),
    path("role/", views.role_select, name="role-select"),
    # No NHS number in any of these: search is a POST, and a record is addressed by its opaque public id.
    path("patients/", views.patient_search, name="patient-search"),
    path("patients/<uuid:public_id>/", views.patient_detail, name="patient-detail"),
    # A printout is an export of what the record page shows, audited as such.
    path("patients/<uuid:public_id>/print/", views.patient_print, name="patient-print"),
    path("patients/<uuid:public_id>/timeline/", timeline.patient_timeline, name="patient-timeline"),
    # A document is named by its entry's id within the patient's record: the door checks it is theirs.
    path(
        "patients/<uuid:public_id>/documents/<int:entry_id>/",
        documents.document_view,
        name="document-view",
    ),
    path("patients/<uuid:public_id>/access/", views.patient_access, name="patient-access"),
    path(
        "patients/<uuid:public_id>/access/relationship/",
        views.relationship_declare,
        name="relationship-declare",
    ),
    path("patients/<uuid:public_id>/access/break-glass/", views.break_glass, name="break-glass"),
    # A grant is named by its reference, which says nothing about the patient.
    path("grants/<str:reference>/end/", views.grant_end, name="grant-end"),
    path("alerts/", views.alert_list, name="alert-list"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="alert-detail"),
    # The information-governance team's cases: patients' objections, subject access requests, opt-outs.
    path("ig/objections/", include(objection_urls)),
    path("ig/", include(subject_access_urls)),
    # The privacy officer's reading of the audit trail.
    path("ig/audit/", include(audit_urls)),
    path("ig/sign-ins/", sign_in_views.sign_in_failures, name="sign-in-failures"),
]
