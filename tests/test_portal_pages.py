"""Logging in and out, the home page, the error pages, and the accessibility basics every page shares."""

from html.parser import HTMLParser

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from tests.builders import PASSWORD


class PageOutline(HTMLParser):
    """The landmarks, headings, labels and fields of a page: what keyboard and screen-reader users rely on."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.html_lang = ""
        self.label_targets: set[str] = set()
        self.fields: list[str] = []
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        if attributes.get("id"):
            self.ids.add(attributes["id"] or "")
        if tag == "html":
            self.html_lang = attributes.get("lang") or ""
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"] or "")
        if tag in {"input", "select", "textarea"} and attributes.get("type") not in {"hidden", "submit"}:
            self.fields.append(attributes.get("id") or "")
        if tag == "a":
            self.links.append(attributes.get("href") or "")


def outline(html: str) -> PageOutline:
    parser = PageOutline()
    parser.feed(html)
    return parser


def assert_accessible_shape(html: str) -> None:
    page = outline(html)
    assert page.html_lang == "en-GB"
    assert page.tags.count("h1") == 1
    for landmark in ("header", "nav", "main", "footer"):
        assert landmark in page.tags
    assert page.links[0] == "#main"
    assert "main" in page.ids
    for field in page.fields:
        assert field
        assert field in page.label_targets
    # In-page links go somewhere that exists.
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids


def test_login_page_is_accessible_and_logs_a_user_in_to_the_home_page(client, cast):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    page = response.content.decode()
    assert_accessible_shape(page)
    # Every field is checked for its label above; these are the fields there are.
    assert outline(page).fields == ["id_username", "id_password"]
    # Post what the browser would: the form's hidden `next` with the typed credentials.
    assert 'name="next" value="/"' in page
    response = client.post(reverse("login"), {"username": "gp.ada", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302
    assert response["Location"] == reverse("records:home")


def test_login_keeps_where_the_user_was_going(client, cast):
    target = reverse("records:patient-search")
    page = client.get(reverse("login"), {"next": target}).content.decode()
    assert f'name="next" value="{target}"' in page
    response = client.post(reverse("login"), {"username": "gp.ada", "password": PASSWORD, "next": target})
    assert response["Location"] == target


def test_wrong_password_shows_an_error_summary(client, cast):
    response = client.post(reverse("login"), {"username": "gp.ada", "password": "wrong"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "There is a problem" in text
    assert 'role="alert"' in text


def test_logout_is_a_post_from_the_navbar(client, cast):
    client.force_login(cast.gp_ada)
    page = client.get(reverse("records:home")).content.decode()
    assert f'<form method="post" action="{reverse("logout")}">' in page
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert client.get(reverse("records:home")).status_code == 302


def test_home_says_who_you_are_and_offers_the_search(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get(reverse("records:home"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "gp.ada" in text
    assert "Clinical practitioner" in text
    assert "Riverside Surgery (D81001)" in text
    assert 'name="nhs_number"' in text
    assert "What the record shows" in text
    assert_accessible_shape(text)


@pytest.mark.parametrize("who", ["gp_ada", "reception_dan", "social_eli"])
def test_record_page_is_accessible(client, cast, who):
    client.force_login(getattr(cast, who))
    response = client.get(reverse("records:patient-detail", kwargs={"public_id": cast.patient_a.public_id}))
    assert response.status_code == 200
    text = response.content.decode()
    assert_accessible_shape(text)
    assert 'aria-live="polite"' in text
    # The tab title never names the patient: it ends up in browser history.
    assert "<title>Patient record \N{EN DASH} sharedcare</title>" in text


@pytest.mark.parametrize("data", [None, {"nhs_number": "123"}])
def test_search_page_is_accessible_with_and_without_errors(client, cast, data):
    client.force_login(cast.gp_ada)
    url = reverse("records:patient-search")
    response = client.post(url, data) if data else client.get(url)
    assert_accessible_shape(response.content.decode())


def test_not_found_page_is_plain_and_accessible(client, cast):
    client.force_login(cast.gp_ada)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "Page not found" in text
    assert response["X-Request-ID"] in text
    assert_accessible_shape(text)


def test_server_error_page_renders_without_a_request_context(cast):
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    text = response.content.decode()
    assert "Sorry, there is a problem with the service" in text
    assert_accessible_shape(text)
