from django.urls import URLPattern, URLResolver, path

from records.portal import subject_access

# A request is named by its reference and an opt-out by its row's id; neither says who the patient is.
urlpatterns: list[URLPattern | URLResolver] = [
    path("subject-access/", subject_access.subject_access_list, name="subject-access-list"),
    path("subject-access/new/", subject_access.subject_access_new, name="subject-access-new"),
    path(
        "subject-access/<str:reference>/", subject_access.subject_access_detail, name="subject-access-detail"
    ),
    path(
        "subject-access/<str:reference>/verify/",
        subject_access.subject_access_verify,
        name="subject-access-verify",
    ),
    path(
        "subject-access/<str:reference>/extend/",
        subject_access.subject_access_extend,
        name="subject-access-extend",
    ),
    path(
        "subject-access/<str:reference>/fulfil/",
        subject_access.subject_access_fulfil,
        name="subject-access-fulfil",
    ),
    path(
        "subject-access/<str:reference>/report.csv",
        subject_access.subject_access_report,
        name="subject-access-report",
    ),
    path(
        "subject-access/<str:reference>/withdraw/",
        subject_access.subject_access_withdraw,
        name="subject-access-withdraw",
    ),
    path("opt-outs/", subject_access.opt_out_list, name="opt-out-list"),
    path("opt-outs/record/", subject_access.opt_out_record, name="opt-out-record"),
    path("opt-outs/<int:opt_out_id>/remove/", subject_access.opt_out_remove, name="opt-out-remove"),
]
