from django.urls import path

from records.portal import views

app_name = "records"

urlpatterns = [
    path("", views.home, name="home"),
    # No NHS number in any of these: search is a POST, and a record is addressed by its opaque public id.
    path("patients/", views.patient_search, name="patient-search"),
    path("patients/<uuid:public_id>/", views.patient_detail, name="patient-detail"),
]
