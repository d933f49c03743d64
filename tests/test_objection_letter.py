"""The letter telling a patient the outcome of their objection: its words for each outcome, read back out of the PDF
as a patient's screen reader or a scanner would read them, accents and all."""

from datetime import date
from io import BytesIO

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from pypdf import PdfReader

from audit.models import AccessEvent
from consent.letters import objection_letter_pdf
from consent.models import Objection
from consent.objections import (
    objection_clinical_input_record,
    objection_decide,
    objection_identity_not_found,
    objection_identity_verify,
    objection_receive,
    objection_withdraw,
)
from records.sections import Section

Status = Objection.Status
TODAY = date(2026, 3, 9)
SUBMISSION = {
    "channel": Objection.Channel.LETTER,
    "given_name": "Zoë",
    "family_name": "Ðorđević-Ångström",
    "birth_date": date(1984, 2, 29),
    "nhs_number": "9990000026",
    "address": "Flat 2, Église House, 12 Mill Road, Cambridge",
    "postcode": "CB1 2AB",
    "contact_by": Objection.ContactBy.POST,
    "contact_detail": "Flat 2, Église House, 12 Mill Road, Cambridge CB1 2AB",
    "scope_sections": [Section.MEDICATIONS, Section.PROBLEMS],
    "scope_from_partners": ["RT1"],
    "scope_to_partners": ["RGT"],
}


def text_of(pdf: bytes) -> str:
    """The letter's text as pypdf reads it, with line wrapping undone."""
    reader = PdfReader(BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


@pytest.fixture
def ig(cast):
    cast.privacy_fay.user_permissions.add(
        Permission.objects.get(codename="manage_objections", content_type__app_label="consent")
    )
    return cast.privacy_fay


def under_review(cast, by, **overrides) -> Objection:
    objection, _ = objection_receive(**{**SUBMISSION, **overrides})
    objection_identity_verify(objection_id=objection.pk, patient_id=cast.patient_b.pk, by=by)
    return objection_clinical_input_record(
        objection_id=objection.pk, by=by, clinician="Dr Hale", text="Considered."
    )


def letter(objection: Objection) -> str:
    objection.refresh_from_db()
    return text_of(objection_letter_pdf(objection, today=TODAY))


def test_every_letter_comes_from_the_team_names_the_case_and_says_how_to_withdraw_and_complain(cast, ig):
    objection = objection_decide(
        objection_id=under_review(cast, ig).pk,
        by=ig,
        outcome=Status.NOT_UPHELD,
        refusal_reason="safeguarding",
    )

    text = letter(objection)

    assert text.startswith("Shared Care Record team Cambridgeshire and Peterborough ICB 9 March 2026")
    assert "Zoë Ðorđević-Ångström Flat 2 Église House 12 Mill Road Cambridge CB1 2AB" in text
    assert f"Our reference: {objection.reference}" in text
    assert "Dear Zoë Ðorđević-Ångström," in text
    assert "You can withdraw your objection at any time" in text
    assert f"Please quote your reference, {objection.reference}." in text
    assert "Information Commissioner's Office (ICO)" in text
    assert "ico.org.uk/make-a-complaint" in text and "0303 123 1113" in text
    assert text.endswith("Yours sincerely, Shared Care Record team, Cambridgeshire and Peterborough ICB")


def test_an_upheld_letter_says_what_will_no_longer_be_shared_in_plain_words(cast, ig):
    objection = objection_decide(objection_id=under_review(cast, ig).pk, by=ig, outcome=Status.UPHELD)

    text = letter(objection)

    assert "We have agreed to your objection" in text
    assert "These parts of your record will no longer be shown: Problems and diagnoses, Medications." in text
    assert (
        "Information from Cambridgeshire and Peterborough NHS FT will no longer be shown to staff of other "
        "organisations." in text
    )
    assert (
        "Staff at Cambridge University Hospitals will no longer be able to see your shared care record."
        in text
    )
    assert "Staff caring for you will see a note that some information is not shown" in text
    assert "In an emergency" not in text
    for code in ("RT1", "RGT", "medications-and-medical-devices", "upheld"):
        assert code not in text


def test_an_upheld_letter_says_when_a_break_glass_may_still_open_it(cast, ig):
    objection = objection_decide(
        objection_id=under_review(cast, ig).pk, by=ig, outcome=Status.UPHELD, break_glass_may_override=True
    )

    assert "In an emergency, when it is needed to protect you or someone else from serious harm" in letter(
        objection
    )


def test_a_whole_record_letter_says_none_of_it_will_be_shown(cast, ig):
    objection = under_review(
        cast, ig, scope_whole_record=True, scope_sections=[], scope_from_partners=[], scope_to_partners=[]
    )
    objection = objection_decide(objection_id=objection.pk, by=ig, outcome=Status.UPHELD)

    assert (
        "None of your record will be shown to health and care staff through the shared care record."
        in letter(objection)
    )


def test_a_partly_upheld_letter_says_what_will_and_what_will_not_be_shared_and_why(cast, ig):
    objection = objection_decide(
        objection_id=under_review(cast, ig).pk,
        by=ig,
        outcome=Status.PARTLY_UPHELD,
        sections=[Section.PROBLEMS],
        from_partners=["RT1"],
        refusal_reason=Objection.RefusalReason.CARE_NOT_OTHERWISE,
    )

    text = letter(objection)

    assert "We have agreed to part of your objection" in text
    assert "These parts of your record will no longer be shown: Problems and diagnoses." in text
    assert "Information from Cambridgeshire and Peterborough NHS FT will no longer be shown" in text
    assert "We have not been able to agree to the rest of your objection:" in text
    assert "These parts of your record will still be shown: Medications." in text
    assert (
        "Staff at Cambridge University Hospitals caring for you will still be able to see your shared care record."
        in text
    )
    assert (
        "This is because the care you need cannot be given safely unless the staff caring for you can see this "
        "information." in text
    )


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("safeguarding", "to keep you, or someone else, safe from harm (safeguarding)"),
        ("public-interest", "there is an overriding public interest in sharing this information"),
        ("care-not-otherwise", "the care you need cannot be given safely"),
    ],
)
def test_a_letter_not_upholding_the_objection_gives_the_reason_in_plain_words(cast, ig, reason, words):
    objection = objection_decide(
        objection_id=under_review(cast, ig).pk, by=ig, outcome=Status.NOT_UPHELD, refusal_reason=reason
    )

    text = letter(objection)

    assert "We have not been able to agree to your objection" in text
    assert words in text
    assert "Your record will go on being shared as before" in text
    assert "no longer be shown" not in text
    # The code itself is never printed; "safeguarding" appears only as the plain word in brackets.
    assert reason not in text.replace("(safeguarding)", "")


def test_a_letter_for_a_case_no_record_matched_says_nothing_changed_and_how_to_give_more(cast, ig):
    objection, _ = objection_receive(**SUBMISSION)
    objection = objection_identity_not_found(objection_id=objection.pk, by=ig, note="Not held.")

    text = letter(objection)

    assert "We could not find your record" in text and "nothing has been changed" in text
    assert "reply to this letter with your NHS number" in text


def test_a_letter_for_someone_asking_on_the_patients_behalf_is_addressed_to_them(cast, ig):
    objection = under_review(
        cast, ig, on_behalf=Objection.OnBehalf.LASTING_POWER_OF_ATTORNEY, requester_name="Hélène Ashby"
    )
    objection = objection_decide(objection_id=objection.pk, by=ig, outcome=Status.UPHELD)

    text = letter(objection)

    assert "Dear Hélène Ashby," in text
    assert "the objection you made for Zoë Ðorđević-Ångström to sharing their shared care record" in text


@pytest.mark.parametrize("status", [Status.RECEIVED, Status.UNDER_REVIEW, Status.WITHDRAWN])
def test_there_is_no_letter_for_a_case_without_an_outcome(cast, ig, status):
    objection = (
        under_review(cast, ig) if status == Status.UNDER_REVIEW else objection_receive(**SUBMISSION)[0]
    )
    if status == Status.WITHDRAWN:
        objection = objection_withdraw(objection_id=objection.pk, by=ig, note="Withdrawn.")

    with pytest.raises(ValueError, match="no outcome to tell"):
        objection_letter_pdf(objection)


def test_the_ig_team_downloads_the_letter_from_the_case_page_and_no_one_else_can(client, cast, ig):
    objection = objection_decide(objection_id=under_review(cast, ig).pk, by=ig, outcome=Status.UPHELD)
    url = reverse("records:objection-letter", kwargs={"reference": objection.reference})
    client.force_login(ig)

    assert (
        url
        in client.get(
            reverse("records:objection-detail", kwargs={"reference": objection.reference})
        ).content.decode()
    )
    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="objection-{objection.reference}.pdf"'
    assert "We have agreed to your objection" in text_of(response.content)
    for who in ("gp_ben", "admin_gus"):
        client.force_login(getattr(cast, who))
        refused = client.get(url)
        assert refused.status_code == 404 and b"%PDF" not in refused.content
    assert not AccessEvent.objects.exists()


def test_an_open_case_has_no_letter_to_download(client, cast, ig):
    objection = under_review(cast, ig)
    client.force_login(ig)

    assert (
        client.get(reverse("records:objection-letter", kwargs={"reference": objection.reference})).status_code
        == 404
    )
