"""The HTTP pull source: page through a search of the partner's FHIR endpoint for what changed since the watermark.

One pull is one ingest run. Every page is fetched first (following `Bundle.link` `next`), then all of them are
ingested through `ingest_texts` in one transaction, and only after that committed does the watermark move: to the
latest `meta.lastUpdated` seen, or to the time the pull started when no resource carried one. A pull that fails at
any point keeps nothing and leaves the watermark where it was, so the next pull asks for the same changes again
(ingest is idempotent, so overlap is harmless; a gap would not be).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from typing import IO, Any
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import HTTPRedirectHandler, OpenerDirector, Request, build_opener

from django.conf import settings
from django.utils import timezone
from tqdm import tqdm

from records.feeds.results import RunCommitted, SourceRun
from records.feeds.sources import SourceError, TransientSourceError
from records.ingest.fhir import as_list, as_object, parse_datetime, text
from records.ingest.pipeline import IngestFailed, ingest_texts
from records.models import Feed, IngestRun

logger = logging.getLogger(__name__)

# Seconds to wait for a connection or for the next bytes of a response.
TIMEOUT_SECONDS = 30.0
# A search that pages further than this is refused rather than followed for ever.
MAX_PAGES = 10_000
FHIR_JSON = "application/fhir+json"
# Statuses that say "try again later" rather than "this request is wrong".
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Page:
    url: str
    body: bytes
    latest_update: datetime | None


def http_pull_run(
    feed: Feed, *, trigger: str, progress: bool = False, on_run_committed: RunCommitted | None = None
) -> SourceRun:
    """Fetch every page changed since the watermark, ingest them as one run, then advance the watermark.

    Always holds: the watermark moves only after the run committed, and never backwards. A terminal source error
    (4xx, a page that is not a FHIR Bundle, a next link to another host) is recorded on a failed IngestRun and
    returned; a transient one (timeout, refused connection, 5xx) is recorded the same way and raised, for a retry.
    """
    started = timezone.now()
    try:
        pages = pages_fetch(feed, progress=progress)
    except SourceError as error:
        run = IngestRun.objects.create(
            feed=feed,
            trigger=trigger,
            source_name=feed.endpoint_url[:500],
            status=IngestRun.Status.FAILED,
            started_at=started,
            finished_at=timezone.now(),
            error=f"{type(error).__name__}: {error}",
        )
        logger.warning("feed %s: pull failed (%s), see run %s", feed.code, type(error).__name__, run.pk)
        if isinstance(error, TransientSourceError):
            raise
        return SourceRun(runs=[run], error=run.error)
    texts = [(f"page-{number}.json", page.body) for number, page in enumerate(pages, start=1)]
    try:
        run = ingest_texts(feed, texts, source_name=feed.endpoint_url, progress=progress, trigger=trigger)
    except IngestFailed as failed:
        _fetch_included(failed.run, started)
        return SourceRun(runs=[failed.run], error=failed.run.error)
    if on_run_committed is not None:
        on_run_committed(run)
    _fetch_included(run, started)
    seen = [page.latest_update for page in pages if page.latest_update is not None]
    watermark = max(seen) if seen else started
    if feed.watermark is None or watermark > feed.watermark:
        Feed.objects.filter(pk=feed.pk).update(watermark=watermark)
        feed.watermark = watermark
    return SourceRun(runs=[run])


def _fetch_included(run: IngestRun, started: datetime) -> None:
    """A pull run starts when its fetch did, so its duration and throughput cover the whole pull."""
    IngestRun.objects.filter(pk=run.pk).update(started_at=started)
    run.started_at = started


def pages_fetch(feed: Feed, *, progress: bool = False) -> list[Page]:
    """Every page of the feed's search since its watermark, in order; raises SourceError or TransientSourceError."""
    endpoint = feed.endpoint_url
    origin = _origin(endpoint)
    if origin[0] not in ("http", "https"):
        raise SourceError(f"The feed's endpoint URL must be http or https, not {endpoint!r}.")
    headers = {"Accept": FHIR_JSON}
    if feed.endpoint_auth_env:
        value = os.environ.get(feed.endpoint_auth_env, "")
        if not value:
            raise SourceError(
                f"The feed names the environment variable {feed.endpoint_auth_env} for its Authorization "
                "header, but it is not set."
            )
        headers["Authorization"] = value
    url: str | None = _first_page_url(endpoint, feed.watermark)
    opener = build_opener(_SameOriginRedirects(origin))
    pages: list[Page] = []
    seen_urls: set[str] = set()
    with tqdm(desc="fetching", unit="page", disable=not progress, file=sys.stderr) as bar:
        while url is not None:
            if url in seen_urls:
                raise SourceError(f"The search's next link goes back to a page already read: {url}")
            if len(pages) >= MAX_PAGES:
                raise SourceError(
                    f"The search has more than {MAX_PAGES} pages; refusing to follow it further."
                )
            seen_urls.add(url)
            page, url = _page_fetch(opener, url, headers)
            pages.append(page)
            bar.update(1)
            if url is not None and _origin(url) != origin:
                raise SourceError(
                    f"Page {len(pages)} links its next page to another host ({_origin(url)[1]}); "
                    f"only {origin[1]} is trusted with this feed's credentials."
                )
    return pages


def _first_page_url(endpoint: str, watermark: datetime | None) -> str:
    if watermark is None:
        return endpoint
    parts = urlsplit(endpoint)
    since = watermark.astimezone(UTC).isoformat().replace("+00:00", "Z")
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("_lastUpdated", f"gt{since}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) with the default port made explicit, so that equal origins compare equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return scheme, f"{(parts.hostname or '').lower()}:{port}"


def _page_fetch(opener: OpenerDirector, url: str, headers: dict[str, str]) -> tuple[Page, str | None]:
    request = Request(url, headers=headers)  # noqa: S310 - the scheme and host were checked against the feed's
    max_bytes: int = settings.INGEST_MAX_FILE_BYTES
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            body = _read_limited(response, max_bytes, url)
    except HTTPError as error:
        if error.code >= 500 or error.code in _TRANSIENT_STATUSES:
            # Raised to Celery, which logs it: the partner's own words (which may name a patient) stay out.
            raise TransientSourceError(f"{url} answered {error.code} {error.reason}") from error
        raise SourceError(f"{url} answered {error.code} {error.reason}{_problem(error)}") from error
    except (URLError, HTTPException, TimeoutError, ConnectionError) as error:
        reason = error.reason if isinstance(error, URLError) else error
        raise TransientSourceError(f"{url} could not be read: {reason}") from error
    try:
        bundle = json.loads(body)
    except ValueError as error:
        raise SourceError(f"{url} did not answer with JSON: {error}") from error
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise SourceError(f"{url} did not answer with a FHIR Bundle.")
    latest = None
    for entry in as_list(bundle.get("entry")):
        meta = as_object(as_object(as_object(entry).get("resource")).get("meta"))
        updated = parse_datetime(meta.get("lastUpdated"))
        if updated is not None and (latest is None or updated > latest):
            latest = updated
    next_url = None
    for link in as_list(bundle.get("link")):
        href = text(as_object(link).get("url"))
        if text(as_object(link).get("relation")) == "next" and href:
            next_url = urljoin(url, href)
    return Page(url=url, body=body, latest_update=latest), next_url


def _read_limited(response: IO[bytes], max_bytes: int, url: str) -> bytes:
    body = response.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise SourceError(f"{url} answered with more than {max_bytes} bytes (INGEST_MAX_FILE_BYTES).")
    return body


def _problem(error: HTTPError) -> str:
    """The OperationOutcome's own words, shortened, when the endpoint sent one."""
    try:
        outcome = json.loads(error.read(64 * 1024))
    except (ValueError, OSError):
        return ""
    issues = [
        text(as_object(issue).get("diagnostics"))
        or text(as_object(as_object(issue).get("details")).get("text"))
        for issue in as_list(as_object(outcome).get("issue"))
    ]
    said = "; ".join(issue for issue in issues if issue)
    return f": {said[:300]}" if said else ""


class _SameOriginRedirects(HTTPRedirectHandler):
    """Follow a redirect only within the endpoint's origin: the Authorization header goes with it."""

    def __init__(self, origin: tuple[str, str]) -> None:
        self.origin = origin

    def redirect_request(
        self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> Request | None:
        if _origin(newurl) != self.origin:
            raise SourceError(
                f"{req.full_url} redirected to another host ({_origin(newurl)[1]}); not followed."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)
