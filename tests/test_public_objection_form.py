"""The public object-to-share form and status page, through Django's test client on real PostgreSQL and Redis.

A patient (or someone for them) fills the form, checks their answers, sends it once and gets a reference kept in
their own session; bad input of every kind is refused with a message and stores nothing; the pages answer the same
whether or not the patient is held here; every POST is rate-limited per client address; a robot that fills the
hidden field, or a form without its CSRF token, is turned away.
"""

import re
from datetime import date, timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from consent.models import Objection
from records.public.words import SECTION_WORDS
from records.sections import Section

FORM = reverse("public:objection-form")
CHECK = reverse("public:objection-check")
SENT = reverse("public:objection-sent")
STATUS = reverse("public:objection-status")

# Brian Barton of the cast (registered at practice B) objects to CPFT's data being shared.
BRIAN = {
    "on_behalf": "self",
    "given_name": "Brian",
    "family_name": "Barton",
    "birth_day": "1",
    "birth_month": "7",
    "birth_year": "1962",
    "nhs_number": "999 000 0026",
    "scope": ["from_partners"],
    "scope_from_partners": ["RT1"],
    "reason_text": "I would rather my mental health care stayed between me and the team.",
    "contact_by": "email",
    "contact_email": "brian@example.org",
}
# Valid NHS numbers held by nobody in the cast.
NOBODY = "9449305552"
TEN_KB = "x" * 10 * 1024
# 49 characters, within every free-text field's limit.
SCRIPT = '<script>alert("x")</script><b onclick="x()">b</b>'


@pytest.fixture(autouse=True)
def _fresh_rate_limits(cast):
    # The limits are counted in Redis per client address, and every test client is 127.0.0.1.
    cache.clear()


def comparable(body: bytes) -> str:
    return re.sub(
        r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value=""', body.decode()
    )


def send(client: Client, answers: dict) -> str:
    """The whole journey: the form, check your answers, send; returns the reference the confirmation shows."""
    assert client.post(FORM, answers)["Location"] == CHECK
    response = client.post(CHECK)
    assert response.status_code == 302
    assert response["Location"] == SENT
    page = client.get(SENT).content.decode()
    reference = re.search(r'<strong class="sc-reference">(OB-[A-Z0-9]{8})</strong>', page)
    assert reference is not None
    return reference.group(1)


def day_month_year(moment) -> str:
    local = timezone.localtime(moment)
    return f"{local.day} {local:%B %Y}"


def error_summary(body: bytes) -> list[str]:
    summary = re.search(r'<ul class="nhsuk-list nhsuk-error-summary__list">(.*?)</ul>', body.decode(), re.S)
    assert summary is not None
    return [
        re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li>(.*?)</li>", summary.group(1), re.S)
    ]


def refused(client: Client, answers: dict) -> list[str]:
    """Post the form; it must come back (200) with an error summary, having stored and kept nothing."""
    response = client.post(FORM, answers)
    assert response.status_code == 200
    assert not Objection.objects.exists()
    assert "public_objection_draft" not in client.session
    assert "Error: " in response.content.decode().split("</title>")[0]
    return error_summary(response.content)


def test_the_form_opens_without_signing_in_naming_partners_and_kinds_of_information_in_plain_words(
    client, django_assert_num_queries
):
    with django_assert_num_queries(1):
        response = client.get(FORM)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/static/vendor/nhsuk-frontend/nhsuk-frontend.min.css"' in body
    assert "bootstrap" not in body
    for name in (
        "Cambridgeshire and Peterborough NHS FT",
        "Cambridge University Hospitals",
        "Riverside Surgery",
    ):
        assert name in body
    assert 'value="RT1"' in body
    for label, hint in SECTION_WORDS.values():
        assert escape(label) in body and escape(hint) in body
    # Codes are what the boxes send, never what a person reads.
    readable = re.sub(r'\s(?:value|id|for|name|aria-describedby|data-aria-controls|href)="[^"]*"', "", body)
    for code in [*(code for code in Section.values if "-" in code), "RT1", "RGT", "D81001"]:
        assert code not in readable
    assert Section.DEMOGRAPHICS.value not in body
    for consequence in (
        "your allergies, the medicines you take",
        "keeping their own records",
        "withdraw your request at any time",
    ):
        assert consequence in body


def test_a_patient_checks_their_answers_sends_once_and_is_given_a_reference(client):
    response = client.post(FORM, BRIAN)
    assert response.status_code == 302 and response["Location"] == CHECK
    assert not Objection.objects.exists()

    check = client.get(CHECK).content.decode()
    for shown in ("Brian Barton", "1 July 1962", "999 000 0026", "Cambridgeshire and Peterborough NHS FT"):
        assert shown in check
    assert "brian@example.org" in check and "I would rather my mental health care" in check
    assert "does not stop your GP practice, hospital or other services keeping their own records" in check
    assert "Accept and send" in check

    reference = send(client, BRIAN)

    objection = Objection.objects.get()
    assert objection.reference == reference
    assert objection.channel == Objection.Channel.WEB_FORM
    assert objection.status == Objection.Status.RECEIVED
    assert objection.patient is None
    assert (objection.given_name, objection.family_name, objection.birth_date) == (
        "Brian",
        "Barton",
        date(1962, 7, 1),
    )
    assert objection.nhs_number == "9990000026"
    assert (objection.address, objection.postcode) == ("", "")
    assert (objection.contact_by, objection.contact_detail) == ("email", "brian@example.org")
    assert objection.scope_whole_record is False
    assert (objection.scope_sections, objection.scope_from_partners, objection.scope_to_partners) == (
        [],
        ["RT1"],
        [],
    )
    assert objection.on_behalf == Objection.OnBehalf.SELF and objection.requester_name == ""
    sent = client.get(SENT).content.decode()
    assert day_month_year(objection.due_at) in sent and "one calendar month" in sent
    assert "public_objection_draft" not in client.session


def test_only_the_answers_chosen_are_sent_and_a_parent_must_give_their_name(client):
    answers = {
        **BRIAN,
        "on_behalf": "parent",
        "nhs_number": "",
        "address_line_1": "4 Fen Lane",
        "address_town": "Ely",
        "postcode": "cb74aa",
        "scope": ["sections", "to_partners"],
        "scope_sections": [Section.SAFEGUARDING, Section.MEDICATIONS],
        "scope_to_partners": ["RGT", "CCC01"],
        "contact_by": "post",
        "contact_address": "4 Fen Lane\nEly",
        "contact_postcode": "CB7 4AA",
    }
    assert refused(client, answers) == ["Enter your full name"]

    send(client, {**answers, "requester_name": "Bea Barton"})

    objection = Objection.objects.get()
    assert objection.on_behalf == Objection.OnBehalf.PARENT and objection.requester_name == "Bea Barton"
    # The partners ticked under a part that is not, are not sent.
    assert objection.nhs_number == ""
    assert (objection.address, objection.postcode) == ("4 Fen Lane, Ely", "CB7 4AA")
    assert sorted(objection.scope_sections) == sorted([Section.SAFEGUARDING, Section.MEDICATIONS])
    assert objection.scope_from_partners == []
    assert sorted(objection.scope_to_partners) == ["CCC01", "RGT"]
    assert (objection.contact_by, objection.contact_detail) == ("post", "4 Fen Lane, Ely, CB7 4AA")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nhs_number": "987 654 4321"}, "This is not a valid NHS number"),
        ({"nhs_number": "12345"}, "An NHS number has 10 digits; this has 5."),
        ({"address_line_1": "4 Fen Lane", "postcode": "ELY"}, "Enter a real postcode, like CB2 0QQ"),
        ({"birth_day": "", "birth_month": "", "birth_year": ""}, "Enter the date of birth"),
        ({"birth_month": ""}, "Date of birth must include a month"),
        ({"birth_day": "31", "birth_month": "2"}, "Date of birth must be a real date"),
        ({"birth_year": "62"}, "Year must include 4 numbers"),
        ({"birth_year": "1066"}, "Date of birth must be after 1890"),
        ({"scope": []}, "Select what you want to stop being shared"),
        (
            {"scope": ["whole", "sections"]},
            "Select the whole record, or the parts you want to stop being shared, not both",
        ),
        ({"scope": ["sections"]}, "Select the kinds of information you want to stop being shared"),
        (
            {"scope_from_partners": []},
            "Select the organisations whose information you want to stop being shared",
        ),
        ({"scope_from_partners": ["RT1", "ZZZ99"]}, "Select organisations from the list"),
        (
            {"scope": ["sections"], "scope_sections": ["person-demographics"]},
            "Select kinds of information from the list",
        ),
        ({"scope": ["everything"]}, "Select what you want to stop being shared from the list"),
        ({"on_behalf": ""}, "Select who you are asking for"),
        ({"on_behalf": "neighbour"}, "Select who you are asking for"),
        ({"given_name": "  "}, "Enter their first name"),
        (
            {"nhs_number": "", "address_town": "Ely", "postcode": "CB7 4AA"},
            "Enter the first line of the address, or the NHS number",
        ),
        ({"contact_by": ""}, "Select how we should contact you"),
        ({"contact_email": ""}, "Enter your email address"),
        (
            {"contact_email": "brian.example.org"},
            "Enter an email address in the correct format, like name@example.com",
        ),
        ({"contact_by": "phone", "contact_phone": "12345"}, "Enter a phone number, like 01632 960 001"),
        (
            {"contact_by": "phone", "contact_phone": "0800 CALL ME"},
            "Enter a phone number, like 01632 960 001",
        ),
        (
            {"contact_by": "post", "contact_address": "4 Fen Lane", "contact_postcode": "ELY 1"},
            "Enter a real postcode",
        ),
        ({"contact_by": "post", "contact_address": "4 Fen Lane"}, "Enter the postcode"),
    ],
)
def test_bad_answers_are_refused_with_a_message_and_nothing_is_stored(client, change, message):
    problems = refused(client, {**BRIAN, **change})

    assert len(problems) == 1
    assert problems[0].startswith(message)


def test_a_birth_date_in_the_future_is_refused(client):
    tomorrow = timezone.localdate() + timedelta(days=1)
    answers = {**BRIAN, "birth_day": tomorrow.day, "birth_month": tomorrow.month, "birth_year": tomorrow.year}

    assert refused(client, answers) == ["Date of birth must be today or in the past"]


def test_an_address_stands_in_for_an_unknown_nhs_number(client):
    answers = {**BRIAN, "nhs_number": ""}

    assert refused(client, answers) == [
        "Enter the first line of the address, or the NHS number",
        "Enter the town or city, or the NHS number",
        "Enter the postcode, or the NHS number",
    ]

    send(client, {**answers, "address_line_1": " 4  Fen Lane ", "address_town": "Ely", "postcode": "cb7 4aa"})

    objection = Objection.objects.get()
    assert (objection.nhs_number, objection.address, objection.postcode) == ("", "4 Fen Lane, Ely", "CB7 4AA")


def test_an_nhs_number_and_an_address_are_both_kept_when_both_are_given(client):
    send(client, {**BRIAN, "address_line_1": "4 Fen Lane", "address_town": "Ely", "postcode": "CB74AA"})

    objection = Objection.objects.get()
    assert (objection.nhs_number, objection.address, objection.postcode) == (
        "9990000026",
        "4 Fen Lane, Ely",
        "CB7 4AA",
    )


@pytest.mark.parametrize("phone", ["01632 960 001", "07700900982", "+44 808 157 0192", "(01223) 245-151"])
def test_phone_numbers_in_their_usual_shapes_are_accepted(client, phone):
    answers = {**BRIAN, "contact_by": "phone", "contact_phone": phone}

    send(client, answers)

    assert Objection.objects.get().contact_detail == phone


TEXT_FIELDS = {
    "given_name": "First name must be 100 characters or fewer",
    "family_name": "Last name must be 100 characters or fewer",
    "requester_name": "Your name must be 200 characters or fewer",
    "nhs_number": "An NHS number has 10 digits",
    "address_line_1": "Address line 1 must be 120 characters or fewer",
    "address_line_2": "Address line 2 must be 120 characters or fewer",
    "address_town": "Town or city must be 50 characters or fewer",
    "postcode": "Enter a real postcode, like CB2 0QQ",
    "reason_text": "Your reason must be 2,000 characters or fewer",
    "contact_email": "Email address must be 254 characters or fewer",
    "contact_phone": "Enter a phone number, like 01632 960 001, 07700 900 982 or +44 808 157 0192",
    "contact_address": "The address must be 250 characters or fewer",
    "contact_postcode": "Enter a real postcode, like CB2 0QQ",
    "birth_day": "Date of birth must be a real date",
    "birth_month": "Date of birth must be a real date",
    "birth_year": "Date of birth must be a real date",
}
# Each field is filled where the answers read it: the address under "no NHS number", and so on.
UNDER = {
    "requester_name": {"on_behalf": "with-authority"},
    "address_line_1": {"nhs_number": "", "address_town": "Ely", "postcode": "CB7 4AA"},
    "address_line_2": {
        "nhs_number": "",
        "address_line_1": "4 Fen Lane",
        "address_town": "Ely",
        "postcode": "CB7 4AA",
    },
    "address_town": {"nhs_number": "", "address_line_1": "4 Fen Lane", "postcode": "CB7 4AA"},
    "postcode": {"nhs_number": "", "address_line_1": "4 Fen Lane", "address_town": "Ely"},
    "contact_phone": {"contact_by": "phone"},
    "contact_address": {"contact_by": "post", "contact_postcode": "CB7 4AA"},
    "contact_postcode": {"contact_by": "post", "contact_address": "4 Fen Lane"},
}


@pytest.mark.parametrize("name", sorted(TEXT_FIELDS))
def test_ten_kilobytes_in_a_text_field_is_refused_with_a_clear_message(client, name):
    answers = {**BRIAN, **UNDER.get(name, {}), name: TEN_KB}

    assert refused(client, answers) == [TEXT_FIELDS[name]]


def test_ten_kilobytes_in_the_status_page_reference_is_refused(client):
    response = client.post(
        STATUS, {"reference": TEN_KB, "birth_day": "1", "birth_month": "7", "birth_year": "1962"}
    )

    assert response.status_code == 200
    assert error_summary(response.content) == ["Enter the reference you were given, like OB-7QK2M9ZD"]


FREE_TEXT = (
    "given_name",
    "family_name",
    "requester_name",
    "address_line_1",
    "address_line_2",
    "address_town",
    "reason_text",
    "contact_address",
)


def test_html_and_script_in_free_text_are_stored_as_typed_and_shown_escaped(client):
    answers = {
        **BRIAN,
        **dict.fromkeys(FREE_TEXT, SCRIPT),
        "on_behalf": "lasting-power-of-attorney",
        "postcode": "CB7 4AA",
        "contact_by": "post",
        "contact_postcode": "CB7 4AA",
    }
    response = client.post(FORM, answers)
    assert response.status_code == 302

    check = client.get(CHECK).content.decode()
    assert "<script>alert" not in check and "<b onclick" not in check
    assert check.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == len(FREE_TEXT)
    form_again = client.get(FORM).content.decode()
    assert "<script>alert" not in form_again and "<b onclick" not in form_again
    send(client, answers)

    objection = Objection.objects.get()
    typed = (objection.given_name, objection.family_name, objection.requester_name, objection.reason_text)
    assert typed == (SCRIPT,) * 4
    assert objection.address == f"{SCRIPT}, {SCRIPT}, {SCRIPT}"
    assert objection.contact_detail == f"{SCRIPT}, CB7 4AA"

    status = client.post(
        STATUS, {"reference": objection.reference, "birth_day": "1", "birth_month": "7", "birth_year": "1962"}
    )
    body = status.content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "<script>alert" not in body and "<b onclick" not in body


@pytest.mark.parametrize(
    "name",
    [
        "nhs_number",
        "postcode",
        "contact_email",
        "contact_phone",
        "contact_postcode",
        "birth_day",
        "birth_month",
        "birth_year",
        "on_behalf",
        "scope",
        "scope_sections",
        "scope_from_partners",
        "scope_to_partners",
        "contact_by",
    ],
)
def test_html_and_script_in_a_checked_field_are_refused_and_never_echoed_raw(client, name):
    answers = {
        **BRIAN,
        **UNDER.get(name, {}),
        "scope": ["from_partners", "sections", "to_partners"],
        "scope_sections": [Section.ALLERGIES],
        "scope_to_partners": ["RGT"],
        name: SCRIPT,
    }
    if name == "postcode":
        answers.update(nhs_number="", address_line_1="4 Fen Lane", address_town="Ely")
    if name == "contact_postcode":
        answers.update(contact_by="post", contact_address="4 Fen Lane")
    if name == "contact_phone":
        answers.update(contact_by="phone")

    response = client.post(FORM, answers)

    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert" not in body and "<b onclick" not in body
    assert len(error_summary(response.content)) >= 1
    assert not Objection.objects.exists()


def test_html_and_script_on_the_status_page_are_refused_and_never_echoed_raw(client):
    response = client.post(
        STATUS, {"reference": SCRIPT, "birth_day": SCRIPT, "birth_month": "7", "birth_year": SCRIPT}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert" not in body and "<b onclick" not in body
    assert error_summary(response.content) == [
        "Enter the reference you were given, like OB-7QK2M9ZD",
        "Date of birth must be a real date",
    ]


def test_the_same_submission_sent_again_quickly_is_stored_once_with_one_reference(client):
    first = send(client, BRIAN)
    again = send(client, BRIAN)
    from_another_browser = send(Client(), BRIAN)

    assert first == again == from_another_browser
    assert Objection.objects.count() == 1


def test_sending_twice_from_one_check_page_stores_once(client):
    client.post(FORM, BRIAN)
    first = client.post(CHECK)
    second = client.post(CHECK)

    assert first["Location"] == SENT
    # The answers left the session with the first send: the second tap starts the form again.
    assert second["Location"] == FORM
    assert Objection.objects.count() == 1


def test_the_reference_is_in_the_senders_session_only(client):
    send(client, BRIAN)

    stranger = Client()
    response = stranger.get(SENT)

    assert response.status_code == 302 and response["Location"] == FORM
    assert Objection.objects.get().reference not in stranger.get(FORM).content.decode()
    assert Objection.objects.get().reference not in SENT


def test_the_pages_that_show_what_was_typed_are_kept_out_of_caches(client):
    reference = send(client, BRIAN)
    client.post(FORM, BRIAN)
    pages = [
        client.get(CHECK),
        client.get(SENT),
        client.post(
            STATUS, {"reference": reference, "birth_day": "1", "birth_month": "7", "birth_year": "1962"}
        ),
    ]

    for response in pages:
        assert response.status_code == 200
        assert {"no-store", "no-cache", "private"} <= {
            part.strip() for part in response["Cache-Control"].split(",")
        }


def test_the_check_page_without_answers_goes_back_to_the_form(client):
    assert client.get(CHECK)["Location"] == FORM
    assert client.post(CHECK)["Location"] == FORM
    assert not Objection.objects.exists()


@pytest.mark.parametrize("url", [FORM, CHECK, STATUS])
def test_a_form_posted_without_its_csrf_token_is_refused_in_the_public_design(url):
    browser = Client(enforce_csrf_checks=True)
    if url == CHECK:
        # The answers are kept from a post with its token; only the send lacks one.
        token_page = browser.get(FORM)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', token_page.content.decode()).group(1)
        assert browser.post(FORM, {**BRIAN, "csrfmiddlewaretoken": token}).status_code == 302

    response = browser.post(url, BRIAN)

    assert response.status_code == 403
    body = response.content.decode()
    assert "This page has expired" in body and "Nothing you sent has been saved" in body
    assert "nhsuk-frontend.min.css" in body
    assert not Objection.objects.exists()


def test_pages_outside_the_public_ones_keep_their_own_csrf_page():
    response = Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "x", "password": "y"})

    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert "nhsuk-frontend" not in response.content.decode()


def test_a_robot_that_fills_the_hidden_field_is_refused_and_nothing_is_kept(client):
    assert refused(client, {**BRIAN, "website": "https://spam.example"}) == [
        "We could not accept this form. If a program filled it in for you, please fill it in yourself."
    ]
    page = client.get(FORM).content.decode()
    trap = re.search(r'<div class="sc-trap" aria-hidden="true">.*?</div>', page, re.S)
    assert trap is not None and 'tabindex="-1"' in trap.group(0)


def test_posts_past_the_limit_per_minute_get_429_and_store_nothing(client, settings):
    settings.PUBLIC_FORM_RATE_PER_MINUTE = 3
    cache.clear()
    for _ in range(2):
        assert client.post(FORM, {**BRIAN, "nhs_number": "1"}).status_code == 200
    assert client.post(FORM, BRIAN).status_code == 302

    limited = client.post(CHECK)

    assert limited.status_code == 429
    assert limited["Retry-After"] == "60"
    body = limited.content.decode()
    assert "Too many attempts" in body and "Nothing you sent on this page has been saved" in body
    assert "nhsuk-frontend.min.css" in body
    assert not Objection.objects.exists()
    # Reading pages is not limited; another address is counted apart.
    assert client.get(FORM).status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").post(FORM, BRIAN).status_code == 302


def test_posts_past_the_limit_per_day_get_429(client, settings):
    settings.PUBLIC_FORM_RATE_PER_DAY = 2
    cache.clear()
    assert client.post(FORM, BRIAN).status_code == 302
    assert client.post(FORM, BRIAN).status_code == 302

    assert client.post(FORM, BRIAN).status_code == 429


def test_the_status_page_is_limited_on_its_own(client, settings):
    settings.PUBLIC_STATUS_RATE_PER_MINUTE = 2
    cache.clear()
    asked = {"reference": "OB-AAAAAAAA", "birth_day": "1", "birth_month": "7", "birth_year": "1962"}
    assert client.post(STATUS, asked).status_code == 200
    assert client.post(STATUS, asked).status_code == 200

    assert client.post(STATUS, asked).status_code == 429
    assert client.post(FORM, BRIAN).status_code == 302


def test_the_form_answers_the_same_for_a_patient_held_here_and_one_who_is_not(client, cast):
    assert cast.patient_b.nhs_number == "9990000026"
    pages = []
    for number in ("9990000026", NOBODY):
        browser = Client()
        answers = {**BRIAN, "nhs_number": number}
        posted = browser.post(FORM, answers)
        check = browser.get(CHECK)
        reference = send(browser, answers)
        sent = browser.get(SENT)
        pages.append(
            [
                (posted.status_code, posted["Location"]),
                comparable(check.content).replace(
                    number[:3] + " " + number[3:6] + " " + number[6:], "NUMBER"
                ),
                comparable(sent.content).replace(reference, "REFERENCE"),
            ]
        )

    assert pages[0] == pages[1]
    assert Objection.objects.count() == 2
    assert not Objection.objects.exclude(patient=None).exists()


def _status(client: Client, reference: str, birth: date = date(1962, 7, 1)) -> str:
    response = client.post(
        STATUS,
        {
            "reference": reference,
            "birth_day": birth.day,
            "birth_month": birth.month,
            "birth_year": birth.year,
        },
    )
    assert response.status_code == 200
    return comparable(response.content)


def test_a_wrong_reference_and_a_wrong_date_of_birth_get_one_answer(client):
    reference = send(client, BRIAN)
    unknown = "OB-" + ("AAAAAAAA" if reference != "OB-AAAAAAAA" else "BBBBBBBB")

    wrong_reference = _status(client, unknown)
    wrong_birth = _status(client, reference, date(1962, 7, 2))

    assert wrong_reference.replace(unknown, reference) == wrong_birth
    assert "We could not find a request with that reference and date of birth" in wrong_birth
    assert "Brian" not in wrong_birth


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (Objection.Status.RECEIVED, "Received"),
        (Objection.Status.IDENTITY_VERIFIED, "Being checked"),
        (Objection.Status.NOT_FOUND, "Being checked"),
        (Objection.Status.UNDER_REVIEW, "Under review"),
        (Objection.Status.UPHELD, "Upheld"),
        (Objection.Status.PARTLY_UPHELD, "Partly upheld"),
        (Objection.Status.NOT_UPHELD, "Not upheld"),
        (Objection.Status.WITHDRAWN, "Withdrawn"),
    ],
)
def test_the_status_page_says_where_a_request_stands_in_plain_words_with_its_due_date(client, status, words):
    reference = send(client, BRIAN)
    objection = Objection.objects.get()
    objection.status = status
    objection.save(update_fields=["status"])

    page = _status(client, reference.lower().replace("-", " "))

    assert re.search(rf'<strong class="nhsuk-tag nhsuk-tag--\w+ sc-status">{words}</strong>', page)
    assert day_month_year(objection.due_at) in page
    assert reference in page and "Brian Barton" in page


def test_the_status_page_does_not_say_whether_a_request_matched_a_patient(client, cast):
    matched = send(Client(), BRIAN)
    unmatched = send(Client(), {**BRIAN, "nhs_number": NOBODY})
    Objection.objects.filter(reference=matched).update(
        status=Objection.Status.IDENTITY_VERIFIED, patient=cast.patient_b, identity_checked_at=timezone.now()
    )
    Objection.objects.filter(reference=unmatched).update(
        status=Objection.Status.NOT_FOUND, identity_checked_at=timezone.now()
    )

    assert _status(client, matched).replace(matched, "REF") == _status(client, unmatched).replace(
        unmatched, "REF"
    )


def test_the_status_page_reads_one_row(client, django_assert_num_queries):
    reference = send(client, BRIAN)
    visitor = Client()

    with django_assert_num_queries(1):
        response = visitor.post(
            STATUS, {"reference": reference, "birth_day": "1", "birth_month": "7", "birth_year": "1962"}
        )

    assert response.status_code == 200
