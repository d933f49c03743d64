"""The IG team's objection cases, mounted at /ig/objections/ in the portal's "records" namespace.

A case is addressed by its reference, which names the case and never the patient; a patient's own GP practice
opens its form from the record, by the record's opaque id. No NHS number is ever in a URL.
"""

from django.urls import URLPattern, URLResolver, path

from records.portal import objections

urlpatterns: list[URLPattern | URLResolver] = [
    path("", objections.objection_list, name="objection-list"),
    path("new/", objections.objection_new, name="objection-new"),
    path(
        "patients/<uuid:public_id>/new/",
        objections.objection_new_for_patient,
        name="objection-new-for-patient",
    ),
    path("<str:reference>/", objections.objection_detail, name="objection-detail"),
    path(
        "<str:reference>/identity/look-up/",
        objections.objection_identity_lookup,
        name="objection-identity-lookup",
    ),
    path(
        "<str:reference>/identity/verify/",
        objections.objection_identity_verify,
        name="objection-identity-verify",
    ),
    path(
        "<str:reference>/identity/not-found/",
        objections.objection_identity_not_found,
        name="objection-identity-not-found",
    ),
    path(
        "<str:reference>/clinical-input/",
        objections.objection_clinical_input,
        name="objection-clinical-input",
    ),
    path("<str:reference>/decision/", objections.objection_decide, name="objection-decide"),
    path("<str:reference>/inform/", objections.objection_inform, name="objection-inform"),
    path("<str:reference>/letter/", objections.objection_letter, name="objection-letter"),
    path("<str:reference>/extend/", objections.objection_extend, name="objection-extend"),
    path("<str:reference>/withdraw/", objections.objection_withdraw, name="objection-withdraw"),
]
