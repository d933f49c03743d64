"""A document in the record opens on its own page, as its own audited action (`view-document`).

Letters arrive through the real ingestion pipeline. A plain-text letter is shown as text, an HTML letter and a
Composition's sections with everything that could run or load removed, a PDF handed over with headers that keep it
from running in the site's origin or being kept. A document the record page would not show this user (another
patient's, not a document, from a partner the patient's objection withholds, sensitive and from another partner)
gets the same 404 as one that does not exist, and each refusal is audited.
"""

import base64
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import Objection
from records.demo.documents import letter_pdf
from records.models import RecordEntry
from records.sections import Section
from tests.builders import about, condition, ingest, ods_reference

Outcome = AccessEvent.Outcome
WRITTEN = "2026-03-02T10:30:00+00:00"
TEXT_LETTER = (
    "Attended the emergency department with chest pain. Examined and investigated; no serious cause found.\n"
    "GP: please review in one to two weeks. <b>not markup</b>"
)
HOSTILE_HTML = (
    "<html><head><title>Ignore me</title><style>body{display:none}</style></head><body>"
    "<h1>Discharge summary</h1><h3>Diagnosis</h3>"
    '<p onclick="steal()">Community acquired pneumonia, treated.</p>'
    "<script>document.title = 'pwned'</script>"
    '<img src="x" onerror="alert(1)">'
    '<a href="javascript:alert(2)">Read more</a> <a href="https://www.nhs.uk/conditions/pneumonia/">Pneumonia</a>'
    '<p style="color:red" class="x" id="y">Follow up in clinic.</p>'
    '<form action="https://evil.example/"><input name="q"></form><iframe src="https://evil.example/"></iframe>'
    "</body></html>"
)


def comparable(body: bytes) -> str:
    """The page with what differs on every response (the CSRF token, the request id) blanked out."""
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body.decode())
    text = re.sub(r'data-(csrf-token|idle-seconds|lifetime-seconds)="[^"]+"', "", text)
    return re.sub(r'<span class="request-id">[0-9a-f]+</span>', "", text)


def _data(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def document_reference(resource_id: str, patient, *contents: dict, title: str = "Discharge letter", **extra):
    return {
        "resourceType": "DocumentReference",
        "id": resource_id,
        "status": "current",
        "docStatus": "final",
        "type": {"text": title},
        "subject": about(patient),
        "date": WRITTEN,
        "author": [ods_reference("RGT")],
        "description": title,
        "content": list(contents) or [{"attachment": {"contentType": "text/plain", "data": _data(b"x")}}],
        **extra,
    }


def attachment(content_type: str, raw: bytes | None = None, **extra) -> dict:
    found = {"contentType": content_type, **extra}
    if raw is not None:
        found["data"] = _data(raw)
    return {"attachment": found}


def composition(resource_id: str, patient) -> dict:
    def div(markup: str) -> dict:
        return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{markup}</div>'}

    return {
        "resourceType": "Composition",
        "id": resource_id,
        "status": "final",
        "type": {"text": "Inpatient discharge summary"},
        "subject": about(patient),
        "date": WRITTEN,
        "author": [ods_reference("RGT")],
        "title": "Inpatient discharge summary",
        "section": [
            {"title": "Presenting complaint", "text": div("<p>Shortness of breath for three days.</p>")},
            {
                "title": "Plan",
                "text": div('<p>Oral antibiotics for five days.</p><a href="javascript:alert(3)">x</a>'),
                "section": [{"title": "Follow-up", "text": div("<p>Chest X-ray in six weeks.</p>")}],
            },
        ],
    }


def entry_of(resource_id: str) -> RecordEntry:
    return RecordEntry.objects.get(source_id=resource_id)


def document_url(patient, entry: RecordEntry | int, pdf: bool = False) -> str:
    entry_id = entry if isinstance(entry, int) else entry.pk
    url = reverse("records:document-view", kwargs={"public_id": patient.public_id, "entry_id": entry_id})
    return f"{url}?format=pdf" if pdf else url


def opened(client, user, patient, entry, pdf: bool = False):
    client.force_login(user)
    newest = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = client.get(document_url(patient, entry, pdf))
    return response, list(AccessEvent.objects.filter(pk__gt=newest).order_by("pk"))


def assert_allowed_once(events, patient, entry: RecordEntry, partner: str) -> AccessEvent:
    assert len(events) == 1
    event = events[0]
    assert event.action == AccessEvent.Action.VIEW_DOCUMENT
    assert event.outcome == Outcome.ALLOWED
    assert event.patient_id == patient.pk
    assert event.partners_shown == [partner]
    assert Section.DOCUMENTS.value in event.sections_shown
    assert event.query.startswith(f"{entry.resource_type}/{entry.source_id}")
    return event


def assert_refused_as_missing(response, events, patient, leaked: tuple[str, ...] = ()) -> None:
    assert response.status_code == 404
    body = response.content.decode()
    for text in leaked:
        assert text not in body
    assert [(event.action, event.outcome, event.patient_id) for event in events] == [
        (AccessEvent.Action.VIEW_DOCUMENT, Outcome.DENIED, patient.pk)
    ]


@pytest.fixture
def letters(cast):
    """The documents the hospital (and the GP practice) sent about the cast's patients, through the pipeline."""
    ingest(
        cast.cuh_feed,
        document_reference(
            "letter-text",
            cast.patient_a,
            attachment("text/plain", TEXT_LETTER.encode()),
            title="Emergency department discharge letter",
        ),
        document_reference(
            "letter-html",
            cast.patient_a,
            attachment("text/html; charset=utf-8", HOSTILE_HTML.encode()),
            attachment("application/pdf", letter_pdf("Discharge summary", ["Pneumonia."], timezone.now())),
            title="Inpatient discharge summary",
        ),
        document_reference(
            "letter-pdf",
            cast.patient_a,
            attachment("application/pdf", letter_pdf("Clinic letter", ["Seen in clinic."], timezone.now())),
            title="Cardiology clinic letter: follow-up <2026>",
        ),
        document_reference(
            "letter-elsewhere",
            cast.patient_a,
            attachment("application/pdf", url="https://epr.cuh.example/Binary/123"),
            title="Operation note",
        ),
        composition("summary-composition", cast.patient_a),
        document_reference("letter-for-brian", cast.patient_b, title="Brian's letter"),
        document_reference(
            "letter-sensitive",
            cast.patient_sensitive,
            attachment("text/plain", b"Sexual health clinic letter"),
            title="Sexual health clinic letter",
            meta={
                "security": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
                ]
            },
        ),
    )
    ingest(
        cast.gp_a_feed,
        document_reference(
            "practice-sensitive",
            cast.patient_sensitive,
            attachment("text/plain", b"Practice's own confidential letter"),
            title="Practice letter",
            meta={
                "security": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
                ]
            },
        ),
        condition("problem-a", cast.patient_a, display="Asthma"),
    )
    assert RecordEntry.objects.filter(section=Section.DOCUMENTS).count() == 8


def test_a_text_letter_opens_as_text_and_its_open_is_audited_once(client, cast, letters):
    entry = entry_of("letter-text")
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Attended the emergency department with chest pain." in body
    assert "GP: please review in one to two weeks." in body
    # Plain text stays text: what looks like markup in it is escaped, not rendered.
    assert "&lt;b&gt;not markup&lt;/b&gt;" in body
    assert "Emergency department discharge letter" in body
    assert "Cambridge University Hospitals" in body
    assert "999 000 0018" in body
    assert reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}) in body
    event = assert_allowed_once(events, cast.patient_a, entry, "RGT")
    assert event.query == f"DocumentReference/{entry.source_id}"
    assert event.reason == f"DocumentReference/{entry.source_id}"
    assert event.sections_shown == [Section.DOCUMENTS.value, Section.DEMOGRAPHICS.value]


def test_an_html_letter_keeps_its_words_and_loses_everything_that_could_run_or_load(client, cast, letters):
    entry = entry_of("letter-html")
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry)
    assert response.status_code == 200
    letter = response.content.decode().split('class="document-body"', 1)[1].split("</article>", 1)[0]
    assert "Community acquired pneumonia, treated." in letter
    assert "Follow up in clinic." in letter
    assert "<h3>Diagnosis</h3>" in letter
    assert 'href="https://www.nhs.uk/conditions/pneumonia/"' in letter
    assert "Read more" in letter
    for dropped in (
        "<script",
        "pwned",
        "onclick",
        "onerror",
        "<img",
        "javascript:",
        "style=",
        "display:none",
        'class="x"',
        'id="y"',
        "<form",
        "<input",
        "<iframe",
        "evil.example",
        "Ignore me",
        "<h1",
    ):
        assert dropped not in letter, dropped
    # The same letter's PDF is offered, and opening it is a separate access.
    assert f"{document_url(cast.patient_a, entry)}?format=pdf" in response.content.decode()
    assert_allowed_once(events, cast.patient_a, entry, "RGT")


def test_a_pdf_is_handed_over_inline_sandboxed_and_never_kept(client, cast, letters):
    entry = entry_of("letter-pdf")
    page, page_events = opened(client, cast.gp_ada, cast.patient_a, entry)
    assert page.status_code == 200
    assert "Open the PDF" in page.content.decode()
    assert_allowed_once(page_events, cast.patient_a, entry, "RGT")

    response, events = opened(client, cast.gp_ada, cast.patient_a, entry, pdf=True)
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF-")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="cardiology-clinic-letter-follow-up-2026.pdf"'
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    policy = [directive.strip() for directive in response["Content-Security-Policy"].split(";")]
    assert "sandbox" in policy
    assert "default-src 'none'" in policy
    event = assert_allowed_once(events, cast.patient_a, entry, "RGT")
    assert event.query == f"DocumentReference/{entry.source_id} as PDF"


def test_a_document_with_no_pdf_has_none_to_download_and_the_refusal_is_audited(client, cast, letters):
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry_of("letter-text"), pdf=True)
    assert_refused_as_missing(response, events, cast.patient_a, leaked=("chest pain",))


def test_a_composition_shows_its_sections_cleaned_under_their_titles(client, cast, letters):
    entry = entry_of("summary-composition")
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry)
    assert response.status_code == 200
    body = response.content.decode()
    for text in (
        "Inpatient discharge summary",
        '<h2 class="document-part-title h4">Presenting complaint</h2>',
        "Shortness of breath for three days.",
        '<h2 class="document-part-title h4">Plan</h2>',
        '<h3 class="document-part-title h5">Follow-up</h3>',
        "Chest X-ray in six weeks.",
    ):
        assert text in body
    assert "javascript:" not in body
    assert "xmlns" not in body.split('class="document-body"', 1)[1]
    assert_allowed_once(events, cast.patient_a, entry, "RGT")


def test_a_document_held_only_at_the_partner_is_said_to_be_there_and_not_fetched(client, cast, letters):
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry_of("letter-elsewhere"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "held by Cambridge University Hospitals and is not stored here" in body
    assert "epr.cuh.example" not in body
    assert len(events) == 1


def test_another_patients_document_under_this_patients_id_is_refused_as_missing(client, cast, letters):
    brian = entry_of("letter-for-brian")
    before = RecordEntry.objects.count()
    response, events = opened(client, cast.gp_ada, cast.patient_a, brian)
    assert_refused_as_missing(response, events, cast.patient_a, leaked=("Brian", "Barton", "9990000026"))
    assert events[0].query == f"document entry {brian.pk}"
    assert events[0].partners_shown == []
    assert RecordEntry.objects.count() == before
    # The same answer for an entry id that does not exist at all.
    missing, missing_events = opened(client, cast.gp_ada, cast.patient_a, brian.pk + 1000)
    assert_refused_as_missing(missing, missing_events, cast.patient_a)
    assert comparable(missing.content) == comparable(response.content)


def test_an_entry_that_is_not_a_document_is_refused_as_missing(client, cast, letters):
    problem = entry_of("problem-a")
    assert problem.section == Section.PROBLEMS
    response, events = opened(client, cast.gp_ada, cast.patient_a, problem)
    assert_refused_as_missing(response, events, cast.patient_a, leaked=("Asthma",))


def test_a_document_entered_in_error_is_refused_as_missing(client, cast, letters):
    entry = entry_of("letter-text")
    RecordEntry.objects.filter(pk=entry.pk).update(is_entered_in_error=True)
    response, events = opened(client, cast.gp_ada, cast.patient_a, entry)
    assert_refused_as_missing(response, events, cast.patient_a, leaked=("chest pain",))


def test_a_document_from_a_partner_the_patients_objection_withholds_is_refused(client, cast, letters):
    Objection.objects.create(
        reference="OB-HOSPITAL",
        channel=Objection.Channel.LETTER,
        given_name="Alice",
        family_name="Ashby",
        birth_date=cast.patient_a.birth_date,
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road, Cambridge",
        due_at=timezone.now() + timedelta(days=30),
        patient=cast.patient_a,
        status=Objection.Status.UPHELD,
        upheld_from_partners=["RGT"],
    )
    for resource_id in ("letter-text", "letter-pdf"):
        response, events = opened(client, cast.gp_ada, cast.patient_a, entry_of(resource_id), pdf=True)
        assert_refused_as_missing(response, events, cast.patient_a, leaked=("chest pain", "%PDF"))
    # The hospital's own staff still read their own letter: the objection is to sharing it.
    entry = entry_of("letter-text")
    response, events = opened(client, cast.ed_cara, cast.patient_a, entry)
    assert response.status_code == 200
    assert_allowed_once(events, cast.patient_a, entry, "RGT")


def test_a_sensitive_document_is_shown_only_to_its_own_partners_staff(client, cast, letters):
    patient = cast.patient_sensitive
    hospital = entry_of("letter-sensitive")
    assert hospital.is_confidential
    response, events = opened(client, cast.gp_ada, patient, hospital)
    assert_refused_as_missing(response, events, patient, leaked=("Sexual health clinic letter",))
    practice = entry_of("practice-sensitive")
    response, events = opened(client, cast.gp_ada, patient, practice)
    assert response.status_code == 200
    assert "Practice&#x27;s own confidential letter" in response.content.decode()
    assert_allowed_once(events, patient, practice, "D81001")


def test_a_role_that_does_not_open_documents_is_refused(client, cast, letters):
    response, events = opened(client, cast.reception_dan, cast.patient_a, entry_of("letter-text"))
    assert_refused_as_missing(response, events, cast.patient_a, leaked=("chest pain",))


def test_a_user_without_a_relationship_is_refused_and_audited(client, cast, letters):
    response, events = opened(client, cast.gp_ben, cast.patient_a, entry_of("letter-text"))
    assert response.status_code == 404
    assert "chest pain" not in response.content.decode()
    assert [(event.action, event.outcome) for event in events] == [
        (AccessEvent.Action.VIEW_DOCUMENT, Outcome.DENIED)
    ]


def test_a_stranger_is_sent_to_sign_in_and_nothing_is_audited(client, cast, letters):
    response = client.get(document_url(cast.patient_a, entry_of("letter-text")))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not AccessEvent.objects.exists()


def test_the_document_page_makes_a_fixed_number_of_queries(client, cast, letters, django_assert_num_queries):
    entry = entry_of("letter-html")
    client.force_login(cast.gp_ada)
    url = document_url(cast.patient_a, entry)
    # The session and user, the role's standing, the relationship, grants and the patient's choices, the
    # document, and the audit row appended to the chain under its lock.
    with django_assert_num_queries(14):
        response = client.get(url)
    assert response.status_code == 200
