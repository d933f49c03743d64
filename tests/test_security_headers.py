"""Transport security: every answer carries the security headers, HTTPS is the default whenever DEBUG is off, and
the deployment settings pass Django's own deployment check."""

import os
import re
import secrets
import subprocess
import sys
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter, UUIDConverter
from django.urls.resolvers import RegexPattern, RoutePattern

HSTS_YEAR = 365 * 24 * 60 * 60
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Strict-Transport-Security": f"max-age={HSTS_YEAR}; includeSubDomains",
}


def _example(pattern: URLPattern) -> dict[str, object]:
    """A value of the right kind for each of the URL's arguments."""
    if isinstance(pattern.pattern, RoutePattern):
        examples: dict[str, object] = {}
        for name, converter in pattern.pattern.converters.items():
            if isinstance(converter, UUIDConverter):
                examples[name] = uuid.UUID(int=1)
            elif isinstance(converter, IntConverter):
                examples[name] = 1
            else:
                examples[name] = "example"
        return examples
    assert isinstance(pattern.pattern, RegexPattern)
    groups = re.findall(r"\(\?P<(\w+)>([^)]*)\)", pattern.pattern._regex)
    return {name: alternatives.split("|")[0] if "|" in alternatives else "1" for name, alternatives in groups}


def _every_url(patterns=None, namespace: str = "") -> list[str]:
    found: list[str] = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _every_url(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.append(reverse(f"{namespace}{pattern.name}", kwargs=_example(pattern) or None))
    return sorted(set(found))


@pytest.fixture
def over_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = HSTS_YEAR
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    return settings


def _has_security_headers(response) -> bool:
    return all(response.get(name) == value for name, value in HEADERS.items())


def test_every_url_answers_with_the_security_headers_and_kept_out_of_caches(client, cast, over_https):
    urls = _every_url()
    assert len(urls) > 100
    for user in (None, cast.gp_ada, cast.admin_gus):
        if user is not None:
            client.force_login(user)
        for url in urls:
            response = client.get(url, secure=True)
            assert _has_security_headers(response), (url, user)
            assert "no-store" in response.get("Cache-Control", ""), (url, user)
            # The content security policy itself is tested in tests/test_csp.py; here, that no answer goes without it.
            assert "default-src 'self'" in response.get("Content-Security-Policy", ""), (url, user)


def test_plain_http_is_sent_to_https_and_a_trusted_proxy_header_counts_as_https(client, db, over_https):
    login = reverse("login")
    redirected = client.get(login)
    assert (redirected.status_code, redirected["Location"]) == (301, f"https://testserver{login}")

    over_https.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get(login, headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert client.get(login, headers={"X-Forwarded-Proto": "http"}).status_code == 301


def test_signing_in_over_https_sets_only_secure_cookies(client, cast, over_https):
    client.get(reverse("login"), secure=True)
    signed_in = client.post(
        reverse("login"),
        {"username": "gp.ada", "password": "correct-horse-battery-staple"},
        secure=True,
    )
    assert signed_in.status_code == 302
    assert {name: morsel["secure"] for name, morsel in client.cookies.items()} == {
        "csrftoken": True,
        "sessionid": True,
    }


def _production_environment(**changes: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name
        not in {"HTTPS", "SECURE_COOKIES", "SSL_REDIRECT", "HSTS_SECONDS", "DEBUG", "PROXY_SSL_HEADER"}
    }
    environment.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="sharedcare.example.nhs.uk",
        PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    environment.update(changes)
    return environment


def _manage(*arguments: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_deployment_check_passes_with_production_settings():
    checked = _manage("check", "--deploy", "--fail-level", "WARNING", environment=_production_environment())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout


def test_without_debug_https_is_the_default_and_a_bad_proxy_header_is_refused():
    shown = _manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
        environment=_production_environment(),
    )
    assert shown.stdout.split() == [
        "True",
        "True",
        "True",
        str(HSTS_YEAR),
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
    ]

    refused = _manage(
        "check", environment=_production_environment(PROXY_SSL_HEADER="X-Forwarded-Proto: https")
    )
    assert refused.returncode != 0
    assert "PROXY_SSL_HEADER must be a header name" in refused.stderr
