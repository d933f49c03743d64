from django.urls import URLPattern, URLResolver, path

from records.public import views

app_name = "public"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.objection_form, name="objection-form"),
    path("check/", views.objection_check, name="objection-check"),
    path("sent/", views.objection_sent, name="objection-sent"),
    path("status/", views.objection_status, name="objection-status"),
]
