"""The patient access report: a privacy officer finds a patient by an NHS number sent by POST and reads every access
to their record, newest first, with the organisation's name, the role, the basis and the reason in words; downloads
it as a PDF the patient can read and as CSV. Only privacy officers reach it, and every reading is audited."""

import csv
import io
import re
from io import BytesIO

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from audit.models import AccessEvent
from consent.models import BreakGlassGrant
from records.models import Organisation, Patient
from tests.builders import PASSWORD, demo_loaded

PATIENT_A_FIELDS = ("Alice", "Ashby", "ASHBY", "9990000018", "999 000 0018", "Mill Road")
NHS_NUMBER_IN_URL = re.compile(r"999\D?000\D?0018")


def opens(user, patient) -> Client:
    """The user finds the patient and opens their record, as on the portal."""
    browser = Client()
    browser.force_login(user)
    browser.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
    browser.get(reverse("records:patient-detail", kwargs={"public_id": patient.public_id}))
    return browser


def history(cast) -> BreakGlassGrant:
    """gp.ada and ed.cara open patient A's record; gp.ben is refused, then breaks the glass and opens it."""
    opens(cast.gp_ada, cast.patient_a)
    opens(cast.ed_cara, cast.patient_a)
    ben = opens(cast.gp_ben, cast.patient_a)
    ben.post(
        reverse("records:break-glass", kwargs={"public_id": cast.patient_a.public_id}),
        {
            "glass-reason_code": "emergency-unable-to-consent",
            "glass-reason_text": "Collapsed in the waiting room",
            "glass-password": PASSWORD,
        },
    )
    ben.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}))
    return BreakGlassGrant.objects.get()


def report_url(name: str, patient: Patient) -> str:
    return reverse(f"records:access-report{name}", kwargs={"public_id": patient.public_id})


def find(client, number: str):
    return client.post(reverse("records:access-report"), {"nhs_number": number})


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def pdf_text(response) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)
    return " ".join(text.split())


def test_a_privacy_officer_finds_the_patient_by_post_and_reads_every_access_newest_first(client, cast):
    grant = history(cast)
    client.force_login(cast.privacy_fay)

    found = find(client, "999 000 0018")
    page = client.get(found["Location"])

    assert found.status_code == 303
    assert found["Location"] == report_url("-patient", cast.patient_a)
    assert page.status_code == 200
    text = page.content.decode()
    for words in (
        "Riverside Surgery (D81001)",
        "Cambridge University Hospitals (RGT)",
        "Fenland Practice (D81002)",
        "Clinical practitioner (R8000)",
        "Registered GP practice",
        "Open or recent care event",
        f"Break-glass access {grant.reference}: Emergency: the patient is unable to consent: "
        "Collapsed in the waiting room",
        "Denied",
        "A GP at Riverside Surgery looked at your record because you are registered there.",
    ):
        assert words in text
    shown = re.findall(r'<time datetime="([^"]+)"', text)
    assert shown == sorted(shown, reverse=True)
    assert (
        text.count('class="card card-body mb-3 access-line')
        == AccessEvent.objects.filter(patient_id=cast.patient_a.pk).count()
    )
    search, read = AccessEvent.objects.filter(username="privacy.fay").order_by("id")
    assert (search.action, search.purpose, search.outcome, search.patient_id, search.query) == (
        "search",
        "audit",
        "allowed",
        cast.patient_a.pk,
        "9990000018",
    )
    assert (read.action, read.purpose, read.outcome, read.patient_id) == (
        "read-audit",
        "audit",
        "allowed",
        cast.patient_a.pk,
    )


def test_the_form_takes_the_number_by_post_and_refuses_bad_input_unaudited(client, cast):
    client.force_login(cast.privacy_fay)

    form = client.get(reverse("records:access-report"))
    bad = find(client, "9876544321")

    assert form.status_code == 200 and 'method="post"' in form.content.decode()
    assert bad.status_code == 200
    assert "is not a valid NHS number" in bad.content.decode() or "check digit" in bad.content.decode()
    assert not AccessEvent.objects.exists()


def test_a_number_no_patient_holds_is_said_plainly_and_audited_as_not_found(client, cast):
    client.force_login(cast.privacy_fay)

    response = find(client, "9000000009")

    assert response.status_code == 200
    assert "No patient is held here with that NHS number." in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id, event.query) == (
        "search",
        "not-found",
        None,
        "9000000009",
    )


def test_an_unknown_patient_id_is_not_found_and_audited(client, cast):
    client.force_login(cast.privacy_fay)
    gone = Patient(nhs_number="9000000009")

    response = client.get(report_url("-patient", gone))

    assert response.status_code == 404
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("read-audit", "not-found", None)


@pytest.mark.parametrize("who", ["gp_ada", "reception_dan", "social_eli", "admin_gus"])
def test_no_one_but_a_privacy_officer_reaches_the_report_and_each_refusal_is_audited(client, cast, who):
    history(cast)
    user = getattr(cast, who)
    client.force_login(user)
    before = AccessEvent.objects.count()
    grants = list(BreakGlassGrant.objects.values())

    responses = [
        client.get(reverse("records:access-report")),
        find(client, cast.patient_a.nhs_number),
        client.get(report_url("-patient", cast.patient_a)),
        client.get(report_url("-pdf", cast.patient_a)),
        client.get(report_url("-csv", cast.patient_a)),
    ]

    assert [response.status_code for response in responses] == [404] * 5
    for response in responses:
        for value in (*PATIENT_A_FIELDS, "Collapsed in the waiting room", "gp.ben"):
            assert value not in response.content.decode()
    refused = AccessEvent.objects.filter(user_id=user.pk, purpose="audit").order_by("id")
    assert [(event.action, event.outcome, event.patient_id) for event in refused] == [
        ("search", "denied", cast.patient_a.pk),
        ("read-audit", "denied", cast.patient_a.pk),
        ("export", "denied", cast.patient_a.pk),
        ("export", "denied", cast.patient_a.pk),
    ]
    assert AccessEvent.objects.count() == before + 4
    assert list(BreakGlassGrant.objects.values()) == grants
    assert reverse("records:access-report") not in client.get(reverse("records:home")).content.decode()


def test_the_privacy_officer_has_a_nav_link_to_the_report(client, cast):
    client.force_login(cast.privacy_fay)

    assert reverse("records:access-report") in client.get(reverse("records:home")).content.decode()


def test_no_nhs_number_is_in_any_url_of_the_report(client, cast):
    history(cast)
    client.force_login(cast.privacy_fay)

    found = find(client, cast.patient_a.nhs_number)
    page = client.get(found["Location"])
    links = re.findall(r'(?:href|action)="([^"]+)"', page.content.decode())
    downloads = [client.get(url) for url in links if "/ig/audit/" in url and url.endswith((".pdf", ".csv"))]

    assert len(downloads) == 2
    for url in [found["Location"], *links, *(response["Content-Disposition"] for response in downloads)]:
        assert not NHS_NUMBER_IN_URL.search(url), url
        assert "Ashby" not in url


def test_every_reading_and_download_is_audited_and_in_the_report_itself(client, cast):
    client.force_login(cast.privacy_fay)

    client.get(report_url("-patient", cast.patient_a))
    pdf = client.get(report_url("-pdf", cast.patient_a))
    rows = csv_rows(client.get(report_url("-csv", cast.patient_a)))

    events = AccessEvent.objects.filter(username="privacy.fay").order_by("id")
    assert [(event.action, event.purpose, event.outcome, event.reason) for event in events] == [
        ("read-audit", "audit", "allowed", "access report read"),
        ("export", "audit", "allowed", "access report downloaded as PDF"),
        ("export", "audit", "allowed", "access report downloaded as CSV"),
    ]
    assert all(event.patient_id == cast.patient_a.pk for event in events)
    assert pdf["Content-Type"] == "application/pdf"
    assert [row["Action"] for row in rows] == ["Export", "Export", "Read audit"]
    assert rows[0]["Reason"] == "access report downloaded as CSV"
    assert rows[0]["Organisation"] == "Cambridgeshire and Peterborough ICB (QUE)"


def test_the_csv_has_each_access_with_organisation_role_basis_and_reason_in_words(client, cast):
    grant = history(cast)
    client.force_login(cast.privacy_fay)

    response = client.get(report_url("-csv", cast.patient_a))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = csv_rows(response)
    about_a = AccessEvent.objects.filter(patient_id=cast.patient_a.pk)
    assert len(rows) == about_a.count()
    views = {
        row["User"]: row for row in rows if row["Action"] == "View record" and row["Outcome"] == "Allowed"
    }
    assert (views["gp.ada"]["Organisation"], views["gp.ada"]["Job role"]) == (
        "Riverside Surgery (D81001)",
        "Clinical practitioner (R8000)",
    )
    assert views["gp.ada"]["Basis in words"].startswith("Registered GP practice")
    assert "Riverside Surgery's GP record (gp-d81001)" in views["gp.ada"]["Basis in words"]
    assert views["ed.cara"]["Organisation"] == "Cambridge University Hospitals (RGT)"
    assert views["ed.cara"]["Basis in words"].startswith("Open or recent care event")
    assert views["gp.ben"]["Basis in words"] == (
        f"Break-glass access {grant.reference}: Emergency: the patient is unable to consent: "
        "Collapsed in the waiting room"
    )
    glass = next(row for row in rows if row["Action"] == "Break glass")
    assert glass["Reason"] == "Emergency: the patient is unable to consent: Collapsed in the waiting room"
    assert {row["Outcome"] for row in rows} >= {"Allowed", "Denied"}


def test_the_pdf_tells_the_patient_each_access_in_plain_words_without_codes(client, cast):
    history(cast)
    client.force_login(cast.privacy_fay)

    text = pdf_text(client.get(report_url("-pdf", cast.patient_a)))

    assert "Who has looked at your shared care record" in text
    assert "For Alice Ashby" in text
    for sentence in (
        "A GP at Riverside Surgery looked at your record because you are registered there.",
        "A clinician at Cambridge University Hospitals looked at your record because you are being cared for "
        "there.",
        "A GP at Fenland Practice tried to search for your record, but was not allowed to.",
        "A GP at Fenland Practice looked at your record using emergency access. The reason they gave: "
        "Emergency: the patient is unable to consent: Collapsed in the waiting room.",
        "A privacy officer at Cambridgeshire and Peterborough ICB downloaded information about your record to "
        "check that your record is used properly.",
    ):
        assert sentence in text
    for code in (
        "R8000",
        "D81001",
        "D81002",
        "RGT",
        "QUE",
        "gp.ada",
        "ed.cara",
        "registered-practice",
        "BG-",
    ):
        assert code not in text
    assert f"{timezone.localdate().day} {timezone.localdate():%B %Y}" in text


# Session, user, the session's second-factor device, role profiles with their roles; the patient; the
# event (the chain's lock, its head and the row); the merged records, the events and the organisations;
# the frame's break-glass banner and the IG team's link.
REPORT_PAGE_QUERIES = 15
# And, once any basis names one, the relationships, self-claims and break-glass grants named, one query each.
REPORT_PAGE_QUERIES_WITH_BASES = REPORT_PAGE_QUERIES + 3


@pytest.mark.parametrize(
    ("visits", "expected"),
    [(0, REPORT_PAGE_QUERIES), (1, REPORT_PAGE_QUERIES_WITH_BASES), (10, REPORT_PAGE_QUERIES_WITH_BASES)],
)
def test_the_report_page_takes_the_same_exact_queries_however_many_accesses_it_lists(
    client, cast, django_assert_num_queries, visits, expected
):
    if visits:
        history(cast)
    for _ in range(visits):
        opens(cast.gp_ada, cast.patient_a)
        opens(cast.ed_cara, cast.patient_a)
    client.force_login(cast.privacy_fay)

    with django_assert_num_queries(expected):
        response = client.get(report_url("-patient", cast.patient_a))

    assert response.status_code == 200


# Acceptance: the demo.


def test_demo_privacy_fay_reports_gp_ada_and_ed_caras_accesses_to_9990000018_as_pdf_and_csv(
    client, db, monkeypatch
):
    demo_loaded(monkeypatch, "demo-Fenland-heron-42")
    patient = Patient.objects.get(nhs_number="9990000018")
    users = {user.username: user for user in get_user_model().objects.all()}
    for username in ("gp.ada", "ed.cara"):
        browser = Client()
        browser.force_login(users[username])
        found = browser.post(reverse("records:patient-search"), {"nhs_number": "9990000018"})
        assert found.status_code == 303
        assert browser.get(found["Location"]).status_code == 200
    client.force_login(users["privacy.fay"])

    page = client.get(find(client, "9990000018")["Location"])
    links = re.findall(r'href="([^"]+\.(?:pdf|csv))"', page.content.decode())
    pdf, spreadsheet = (client.get(url) for url in links)

    text = pdf_text(pdf)
    practice = Organisation.objects.get(ods_code="D81001").name
    hospital = Organisation.objects.get(ods_code="RGT").name
    assert f"A GP at {practice} looked at your record because you are registered there." in text
    assert f"A clinician at {hospital} looked at your record because" in text
    rows = csv_rows(spreadsheet)
    views = {
        row["User"]: row
        for row in rows
        if row["Action"] == "View record" and row["User"] in ("gp.ada", "ed.cara")
    }
    assert views["gp.ada"]["Organisation"] == f"{practice} (D81001)"
    assert views["gp.ada"]["Basis in words"].startswith("Registered GP practice")
    assert views["ed.cara"]["Organisation"] == f"{hospital} (RGT)"
    assert views["ed.cara"]["Job role"] == "Clinical practitioner (R8000)"
    ed_basis = views["ed.cara"]["Basis in words"]
    assert (
        ed_basis
        and ed_basis != AccessEvent.objects.filter(username="ed.cara", action="view-record").get().basis
    )
    assert all(row["Outcome"] == "Allowed" for row in views.values())
    exports = AccessEvent.objects.filter(username="privacy.fay", action="export", patient_id=patient.pk)
    assert exports.count() == 2
