from django.urls import path

from records.portal import views

app_name = "records"

urlpatterns = [
    path("", views.home, name="home"),
    path("role/", views.role_select, name="role-select"),
    # No NHS number in any of these: search is a POST, and a record is addressed by its opaque public id.
    path("patients/", views.patient_search, name="patient-search"),
    path("patients/<uuid:public_id>/", views.patient_detail, name="patient-detail"),
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
]
