"""The locust users of the read benchmark: signed-in sessions opening one page each, as fast as they are answered.

Run by `records.bench.load` (never by hand): BENCH_READERS names a JSON file of signed-in readers (their cookies
and the patients they may open), BENCH_PAGE the page every user opens. No wait between requests: each user is a
closed loop, so N users measure the server at N requests in flight. A response counts as a failure unless it is
exactly what the page answers a reader who is allowed (200, or the search's 303 to the record), so a bench that was
silently refused or signed out never reports fast numbers.

Imports nothing from Django: locust's gevent patches the standard library, and the server is measured over HTTP.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, task

_READERS: list[dict[str, Any]] = json.loads(Path(os.environ["BENCH_READERS"]).read_text())
_PAGE = os.environ["BENCH_PAGE"]
_TURN = itertools.count()
# What each page answers when it works; the record page must show the record, not a refusal.
_FEED_MONITOR = "/admin/records/feed/monitor/"
_SEARCH = "/patients/"


class Reader(HttpUser):
    """One signed-in reader, with the session the sign-in pages gave them."""

    def on_start(self) -> None:
        self.reader = _READERS[next(_TURN) % len(_READERS)]
        self.random = random.Random(self.reader["username"])  # noqa: S311 - choosing pages, not secrets
        for name, value in self.reader["cookies"].items():
            self.client.cookies.set(name, value)
        self.csrf = self.reader["cookies"].get("csrftoken", "")

    def _expect(self, response: Any, status: int, marker: str = "") -> None:
        if response.status_code != status:
            response.failure(f"answered {response.status_code}, not {status}")
        elif marker and marker not in response.text:
            response.failure(f"the page does not show {marker!r}")
        else:
            response.success()

    @task
    def open_page(self) -> None:
        if _PAGE == "record":
            public_id = self.random.choice(self.reader["patients"])
            with self.client.get(
                f"/patients/{public_id}/", name="record open", allow_redirects=False, catch_response=True
            ) as response:
                self._expect(response, 200, "NHS number")
        elif _PAGE.startswith("record:"):
            # Records of one depth, named by it: `record:<name>` with the reader's patients of that depth.
            public_id = self.random.choice(self.reader["patients"])
            with self.client.get(
                f"/patients/{public_id}/", name=_PAGE, allow_redirects=False, catch_response=True
            ) as response:
                self._expect(response, 200, "NHS number")
        elif _PAGE == "search":
            number = self.random.choice(self.reader["numbers"])
            with self.client.post(
                _SEARCH,
                data={"nhs_number": number, "csrfmiddlewaretoken": self.csrf},
                headers={"Referer": f"{self.host}{_SEARCH}"},
                name="NHS number search",
                allow_redirects=False,
                catch_response=True,
            ) as response:
                self._expect(response, 303)
        elif _PAGE == "name-search":
            family_name, birth_date = self.random.choice(self.reader["names"])
            with self.client.post(
                _SEARCH,
                data={
                    "search": "name",
                    "family_name": family_name,
                    "birth_date": birth_date,
                    "csrfmiddlewaretoken": self.csrf,
                },
                headers={"Referer": f"{self.host}{_SEARCH}"},
                name="name and birth-date search",
                allow_redirects=False,
                catch_response=True,
            ) as response:
                # The patient is among those listed: their family name is on the page.
                if response.status_code == 200 and family_name.upper() not in response.text.upper():
                    response.failure("the patient searched for is not listed")
                else:
                    self._expect(response, 200)
        elif _PAGE == "feed-monitor":
            with self.client.get(
                _FEED_MONITOR, name="feed monitor", allow_redirects=False, catch_response=True
            ) as response:
                self._expect(response, 200, "bench-")
        elif _PAGE == "access-report":
            public_id = self.random.choice(self.reader["patients"])
            with self.client.get(
                f"/ig/audit/access-report/{public_id}/",
                name="patient access report",
                allow_redirects=False,
                catch_response=True,
            ) as response:
                self._expect(response, 200)
        else:
            raise RuntimeError(f"unknown BENCH_PAGE {_PAGE!r}")
