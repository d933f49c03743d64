"""Every URL of the project, walked with every demo user: a request that touches a patient writes its own access
event with the right action, allowed or denied; a request that touches none writes nothing; no NHS number is ever
in a URL or a redirect.

The walk loads the demo once and fills each URL's arguments by their names from the demo's objects, so a URL added
later is walked too; one the walk cannot classify or fill fails the walk with its name.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, NationalOptOut, Objection, SelfClaimedRelationship
from consent.models import SubjectAccessRequest as AccessRequest
from consent.policy import visible_patients
from records.backoffice.quarantine import NHS_NUMBER_SEARCH_FIELD
from records.models import (
    Feed,
    IngestRun,
    Organisation,
    PartnerCredential,
    Patient,
    PushedBatch,
    QuarantinedRecord,
    RecordEntry,
)
from records.portal.views import CLAIMABLE_SESSION_KEY
from records.sections import Section
from tests.builders import url_names

DEMO_PASSWORD = "demo-Fenland-heron-42"
DEMO_USERS = (
    "gp.ada",
    "gp.ben",
    "ed.cara",
    "reception.dan",
    "social.eli",
    "privacy.fay",
    "mh.ivy",
    "admin.gus",
)
Action = AccessEvent.Action


@dataclass(frozen=True)
class Audited:
    """Each request writes at least one access event (any number, with `required` False: a page that reads nothing
    until asked, audited when refused), every one with an action of `actions`; `names_patient` False: none of them
    names a patient (a reading of the trail that lists no patient)."""

    actions: frozenset[str]
    names_patient: bool = True
    required: bool = True


# A request that touches no patient writes no access event.
NOTHING = None
# A request not sent: an admin form's POST would change the back office's own data, which is not what is walked.
NOT_SENT = "not sent"
Expectation = Audited | str | None


def audited(*actions: str, names_patient: bool = True, required: bool = True) -> Audited:
    return Audited(frozenset(actions), names_patient, required)


@dataclass(frozen=True)
class Expect:
    get: Expectation
    post: Expectation = NOTHING


VIEW = audited(Action.VIEW_RECORD, Action.OBJECTION_OVERRIDE)
FEED_SUPPORT_VIEW = Expect(audited(Action.VIEW_DOCUMENT), NOT_SENT)
FEED_SUPPORT_REVEAL = Expect(NOTHING, audited(Action.REVEAL))
READ_AUDIT = audited(Action.READ_AUDIT)
READ_AUDIT_NO_PATIENT = audited(Action.READ_AUDIT, names_patient=False)

# Every URL that touches a patient, and every portal URL, by name: what each GET and POST must write. A URL on
# none of these lists, nor matched by the back office's staff-only rule below, fails the walk.
EXPECTED: dict[str, Expect] = {
    # The clinician's pages.
    "records:home": Expect(NOTHING),
    "records:role-select": Expect(NOTHING),
    "records:patient-search": Expect(NOTHING, audited(Action.SEARCH)),
    "records:patient-detail": Expect(VIEW),
    "records:patient-print": Expect(audited(Action.EXPORT, Action.OBJECTION_OVERRIDE)),
    "records:document-view": Expect(audited(Action.VIEW_DOCUMENT, Action.OBJECTION_OVERRIDE)),
    "records:patient-timeline": Expect(VIEW),
    # Open only for a patient this session was offered (see `_offered`); the offer page itself reads nothing.
    "records:patient-access": Expect(NOTHING),
    "records:relationship-declare": Expect(NOTHING, audited(Action.DECLARE_RELATIONSHIP)),
    "records:break-glass": Expect(NOTHING, audited(Action.BREAK_GLASS)),
    "records:grant-end": Expect(NOTHING, audited(Action.END_GRANT)),
    # Privacy officers: the queue names no patient and a review changes only the alert; opening one is a read.
    "records:alert-list": Expect(NOTHING),
    "records:alert-detail": Expect(READ_AUDIT, READ_AUDIT),
    # The IG team's objection cases: a case names the requester, not a patient held; matching one is audited.
    "records:objection-list": Expect(NOTHING),
    "records:objection-new": Expect(NOTHING),
    "records:objection-new-for-patient": Expect(
        audited(Action.VIEW_RECORD), audited(Action.VIEW_RECORD, Action.MATCH_PATIENT)
    ),
    "records:objection-detail": Expect(NOTHING),
    "records:objection-identity-lookup": Expect(NOTHING, audited(Action.MATCH_PATIENT)),
    "records:objection-identity-verify": Expect(NOTHING, audited(Action.MATCH_PATIENT)),
    "records:objection-identity-not-found": Expect(NOTHING),
    "records:objection-clinical-input": Expect(NOTHING),
    "records:objection-decide": Expect(NOTHING),
    "records:objection-inform": Expect(NOTHING),
    "records:objection-letter": Expect(NOTHING),
    "records:objection-extend": Expect(NOTHING),
    "records:objection-withdraw": Expect(NOTHING),
    # Subject access requests and national data opt-outs.
    "records:subject-access-list": Expect(NOTHING),
    "records:subject-access-new": Expect(NOTHING),
    "records:subject-access-detail": Expect(NOTHING),
    "records:subject-access-verify": Expect(NOTHING, audited(Action.MATCH_PATIENT)),
    "records:subject-access-extend": Expect(NOTHING),
    "records:subject-access-fulfil": Expect(NOTHING, audited(Action.EXPORT)),
    "records:subject-access-report": Expect(audited(Action.EXPORT)),
    "records:subject-access-withdraw": Expect(NOTHING),
    "records:opt-out-list": Expect(audited(Action.SEARCH)),
    "records:opt-out-record": Expect(NOTHING, audited(Action.MATCH_PATIENT)),
    "records:opt-out-remove": Expect(NOTHING, audited(Action.MATCH_PATIENT)),
    # The privacy officer's reading of the trail.
    "records:access-report": Expect(NOTHING, audited(Action.SEARCH)),
    "records:access-report-patient": Expect(READ_AUDIT),
    "records:access-report-pdf": Expect(audited(Action.EXPORT)),
    "records:access-report-csv": Expect(audited(Action.EXPORT)),
    "records:change-history": Expect(READ_AUDIT_NO_PATIENT),
    # The audit console: its home and its empty search form list no patient; a search is kept in the session and
    # named by a token, so without one the results and download read nothing (tests of the console walk them).
    "records:audit-console": Expect(READ_AUDIT_NO_PATIENT),
    "records:audit-events": Expect(
        audited(Action.READ_AUDIT, names_patient=False, required=False),
        # An empty search is refused by its form before anything is read.
        audited(Action.READ_AUDIT, Action.SEARCH, required=False),
    ),
    "records:audit-events-export": Expect(audited(Action.READ_AUDIT, Action.EXPORT, required=False)),
    "records:audit-user-timeline": Expect(READ_AUDIT),
    "records:sign-in-failures": Expect(READ_AUDIT_NO_PATIENT),
    # Without signing in, or the account's own pages: no patient data.
    "login": Expect(NOTHING),
    "logout": Expect(NOTHING),
    "password_change": Expect(NOTHING),
    "password_change_done": Expect(NOTHING),
    "oidc:sign-in": Expect(NOTHING),
    "oidc:callback": Expect(NOTHING),
    "mfa-verify": Expect(NOTHING),
    "mfa-enrol": Expect(NOTHING),
    "session-status": Expect(NOTHING),
    "session-keep-alive": Expect(NOTHING),
    "public:objection-form": Expect(NOTHING),
    "public:objection-check": Expect(NOTHING),
    "public:objection-sent": Expect(NOTHING),
    "public:objection-status": Expect(NOTHING),
    # The partner API answers a partner's key only, and its answers are counts.
    "api:batch-push": Expect(NOTHING),
    "api:batch-detail": Expect(NOTHING),
    # The back office's views that can show patient data (tests/test_urls.py BACK_OFFICE_PATIENT_VIEWS).
    "admin:records_quarantinedrecord_changelist": Expect(NOTHING, audited(Action.SEARCH)),
    "admin:records_quarantinedrecord_change": FEED_SUPPORT_VIEW,
    "admin:records_quarantinedrecord_reveal": FEED_SUPPORT_REVEAL,
    "admin:records_quarantinedrecord_replay": Expect(NOTHING, audited(Action.VIEW_DOCUMENT)),
    "admin:records_quarantinedrecord_fix": FEED_SUPPORT_REVEAL,
    "admin:records_quarantinedrecord_discard": Expect(NOTHING, audited(Action.VIEW_DOCUMENT)),
    # A feed's controls: no patient. Run now and Pause would change the demo's feeds, so they are not sent.
    "admin:records_feed_run_now": Expect(NOTHING, NOT_SENT),
    "admin:records_feed_pause": Expect(NOTHING, NOT_SENT),
    "admin:records_feed_csv_mapping": Expect(NOTHING),
    "admin:records_ingestrun_change": FEED_SUPPORT_VIEW,
    "admin:records_ingestrun_reveal": FEED_SUPPORT_REVEAL,
    "admin:records_pushedbatch_change": FEED_SUPPORT_VIEW,
    "admin:records_pushedbatch_reveal": FEED_SUPPORT_REVEAL,
    "admin:auditlog_logentry_changelist": Expect(READ_AUDIT_NO_PATIENT, NOT_SENT),
    "admin:auditlog_logentry_change": Expect(READ_AUDIT_NO_PATIENT, NOT_SENT),
    "admin:audit_accessevent_changelist": Expect(audited(Action.READ_AUDIT), NOT_SENT),
    "admin:audit_accessevent_change": Expect(audited(Action.READ_AUDIT), NOT_SENT),
}
# The back office's own pages (partners, feeds, keys, users, roles, teams, code lists, sign-in attempts): staff
# only and no patient in any. Matched by their admin suffix, so a model registered later is walked too.
STAFF_ONLY_SUFFIXES = (
    "_changelist",
    "_change",
    "_add",
    "_delete",
    "_history",
    "_password_change",
    "_monitor",
)
STAFF_ONLY_SITE = {
    "admin:index",
    "admin:app_list",
    "admin:login",
    "admin:logout",
    "admin:password_change",
    "admin:password_change_done",
    "admin:jsi18n",
    "admin:autocomplete",
    "admin:view_on_site",
}
# Patient-touching back-office pages whose admin suffix would otherwise make them staff-only.
_PATIENT_ADMIN = {name for name in EXPECTED if name.startswith("admin:")}


def expectation_of(name: str) -> Expect | None:
    if name in EXPECTED:
        return EXPECTED[name]
    if name.startswith("admin:") and (name in STAFF_ONLY_SITE or name.endswith(STAFF_ONLY_SUFFIXES)):
        return Expect(NOTHING, NOT_SENT)
    return None


@dataclass
class Demo:
    """What the walk fills URL arguments from, and the NHS numbers no URL may carry."""

    users: dict[str, object]
    numbers: set[str]
    visible: dict[str, Patient]
    hidden: dict[str, Patient]
    problems: list[str] = field(default_factory=list)


def _all_patterns(patterns, namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _all_patterns(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", pattern


def _kwarg_names(pattern: URLPattern) -> list[str]:
    return sorted(pattern.pattern.regex.groupindex)


def _admin_model(name: str):
    """The model of an admin URL named `admin:<app>_<model>_<view>`, or None."""
    label = name.removeprefix("admin:")
    for content_type in ContentType.objects.all():
        prefix = f"{content_type.app_label}_{content_type.model}_"
        if label.startswith(prefix) and content_type.model_class() is not None:
            return content_type.model_class()
    return None


def _reference(name: str) -> str | None:
    if "objection" in name:
        wanted = Objection.Status.RECEIVED if "identity" in name else Objection.Status.UPHELD
        case = Objection.objects.filter(status=wanted).first() or Objection.objects.first()
        return case.reference if case else None
    if "subject-access" in name:
        wanted = (
            AccessRequest.Status.RECEIVED
            if name.endswith("verify")
            else AccessRequest.Status.IDENTITY_VERIFIED
        )
        request = AccessRequest.objects.filter(status=wanted).first() or AccessRequest.objects.first()
        return request.reference if request else None
    if "grant" in name:
        grants = [
            *BreakGlassGrant.objects.order_by("-pk")[:1],
            *SelfClaimedRelationship.objects.order_by("-pk")[:1],
        ]
        return grants[0].reference if grants else "BG-NOTHELD0"
    return None


def _kwarg_value(demo: Demo, name: str, kwarg: str, username: str, patient: Patient) -> object:
    """A value for one URL argument, by its name and the URL's namespace and name; None when the walk knows none."""
    if kwarg == "public_id":
        if name.startswith("api:"):
            batch = PushedBatch.objects.first()
            return batch.public_id if batch else uuid.UUID(int=1)
        return patient.public_id
    if kwarg == "reference":
        return _reference(name)
    if kwarg == "entry_id":
        # One of the patient's documents, or else any: either way the door answers and audits it.
        documents = RecordEntry.objects.filter(section=Section.DOCUMENTS).order_by("pk")
        own = documents.filter(patient=patient).values_list("pk", flat=True).first()
        return own or documents.values_list("pk", flat=True).first() or 1
    if kwarg == "alert_id":
        alert = Alert.objects.order_by("-pk").first()
        return alert.pk if alert else 1
    if kwarg == "opt_out_id":
        return NationalOptOut.objects.order_by("pk").values_list("pk", flat=True).first() or 1
    if kwarg == "user_id":
        return demo.users["gp.ada"].pk
    if kwarg == "code":
        return Feed.objects.order_by("code").values_list("code", flat=True).first()
    if kwarg == "app_label":
        return "records"
    if kwarg == "content_type_id":
        return ContentType.objects.get_for_model(Organisation).pk
    if kwarg in ("object_id", "id"):
        model = Organisation if name == "admin:view_on_site" else _admin_model(name)
        if model is None:
            return None
        found = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        return found if found is not None else 1
    return None


def _natural_post(name: str, username: str, patient: Patient, client: Client) -> dict[str, object]:
    """What a user would send to the form behind `name`; an empty form where the walk knows no natural input."""
    number = patient.nhs_number
    born = patient.birth_date.isoformat() if patient.birth_date else "1970-01-01"
    if name in ("records:patient-search", "records:access-report"):
        return {"nhs_number": number}
    if name == "records:objection-identity-lookup":
        return {"identity-nhs_number": number}
    if name == "records:objection-identity-verify":
        return {"verify-nhs_number": number, "verify-note": "walked"}
    if name in ("records:subject-access-verify", "records:opt-out-record"):
        return {"nhs_number": number, "birth_date": born}
    if name == "records:opt-out-remove":
        return {"reason": "walked"}
    if name == "records:relationship-declare":
        hours = client.get(reverse("records:patient-access", kwargs={"public_id": patient.public_id}))
        offered = hours.context["claim_form"].fields["hours"].initial if hours.status_code == 200 else 1
        return {
            "claim-reason_code": SelfClaimedRelationship.Reason.choices[0][0],
            "claim-reason_text": "walked",
            "claim-hours": offered,
        }
    if name == "records:break-glass":
        return {
            "glass-reason_code": BreakGlassGrant.Reason.choices[0][0],
            "glass-reason_text": "walked",
            "glass-password": DEMO_PASSWORD,
        }
    if name == "admin:records_quarantinedrecord_changelist":
        return {NHS_NUMBER_SEARCH_FIELD: number}
    if name.endswith("_reveal"):
        return {"reveal": "1"}
    return {}


def _sign_in(user) -> Client:
    client = Client()
    client.force_login(user)
    # A user holding several role profiles chooses one first, as at login; nothing opens until they do.
    page = client.get(reverse("records:role-select"))
    if page.status_code == 200 and page.context and "form" in page.context:
        choices = [value for value, _ in page.context["form"].fields["profile"].choices if value != ""]
        if choices:
            client.post(reverse("records:role-select"), {"profile": choices[0]})
    return client


def _offered(client: Client, patient: Patient, name: str) -> bool:
    """Search for the patient first, as the only way to the access pages is: whether the session was offered what
    the URL gives (a self-claim, a break-glass, or either for the page that offers them)."""
    client.post(reverse("records:patient-search"), {"nhs_number": patient.nhs_number})
    for entry in client.session.get(CLAIMABLE_SESSION_KEY, []):
        if entry[0] == str(patient.public_id):
            claim_hours, glass_hours = int(entry[2]), int(entry[3])
            return {
                "records:relationship-declare": claim_hours > 0,
                "records:break-glass": glass_hours > 0,
            }.get(name, True)
    return False


SIGN_OUTS = {"logout", "admin:logout"}
OFFER_GATED = {"records:patient-access", "records:relationship-declare", "records:break-glass"}


def _check(demo: Demo, label: str, response, expectation: Expectation, events: list[AccessEvent]) -> None:
    location = response.get("Location", "")
    for number in demo.numbers:
        if number in location:
            demo.problems.append(f"{label}: NHS number in the redirect {location}")
    turned_away = response.status_code == 405 or (
        response.status_code == 302
        and (location.startswith(reverse("login")) or location.startswith(reverse("admin:login")))
    )
    if expectation is NOTHING or turned_away:
        if events and expectation is NOTHING:
            demo.problems.append(f"{label}: touches no patient but wrote {[e.action for e in events]}")
        elif events and turned_away and response.status_code == 405:
            demo.problems.append(f"{label}: refused its method but wrote {[e.action for e in events]}")
        return
    assert isinstance(expectation, Audited)
    if not events and expectation.required:
        demo.problems.append(f"{label}: answered {response.status_code} and wrote no access event")
        return
    wrong = sorted({event.action for event in events} - expectation.actions)
    if wrong:
        demo.problems.append(f"{label}: wrote {wrong}, expected only {sorted(expectation.actions)}")
    if not expectation.names_patient and any(event.patient_id is not None for event in events):
        demo.problems.append(f"{label}: names no patient but its event does")


def _request(
    demo: Demo,
    client: Client,
    method: str,
    url: str,
    data: dict[str, object],
    label: str,
    expectation: Expectation,
) -> None:
    for number in demo.numbers:
        if number in url:
            demo.problems.append(f"{label}: NHS number in the URL {url}")
    newest = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        response = client.get(url) if method == "GET" else client.post(url, data)
    except Exception as error:
        demo.problems.append(f"{label}: raised {type(error).__name__}: {error}")
        return
    events = list(AccessEvent.objects.filter(pk__gt=newest).order_by("pk"))
    _check(demo, label, response, expectation, events)


def _walk_url(
    demo: Demo, name: str, pattern: URLPattern, username: str, sign_in: Callable[[bool], Client]
) -> None:
    expect = expectation_of(name)
    if expect is None:
        demo.problems.append(
            f"{name}: not classified; add it to EXPECTED or the back office's staff-only rule"
        )
        return
    kwargs_names = _kwarg_names(pattern)
    variants = (
        [("may see", demo.visible[username]), ("may not see", demo.hidden[username])]
        if "public_id" in kwargs_names and not name.startswith("api:")
        else [("", demo.visible[username])]
    )
    for variant, patient in variants:
        kwargs = {kwarg: _kwarg_value(demo, name, kwarg, username, patient) for kwarg in kwargs_names}
        missing = [kwarg for kwarg, value in kwargs.items() if value is None]
        if missing:
            demo.problems.append(f"{name}: the walk cannot fill {missing}")
            return
        url = reverse(name, kwargs=kwargs)
        for method, expectation in (("GET", expect.get), ("POST", expect.post)):
            if expectation == NOT_SENT:
                continue
            # Signing out ends the session the rest of the walk needs: the next request signs in again.
            client = sign_in(name in SIGN_OUTS)
            if name in OFFER_GATED and not _offered(client, patient, name):
                # The view opens only for a patient this session was offered: it refuses before the door.
                expectation = NOTHING
            data = _natural_post(name, username, patient, client) if method == "POST" else {}
            label = f"{method} {name} as {username}{f' ({variant})' if variant else ''}"
            _request(demo, client, method, url, data, label, expectation)


def _demo_load() -> Demo:
    call_command(
        "demo_load",
        "--patients",
        "30",
        "--reference-date",
        timezone.localdate().isoformat(),
        stdout=io.StringIO(),
    )
    users = {user.username: user for user in get_user_model().objects.filter(username__in=DEMO_USERS)}
    patients = list(Patient.objects.filter(merged_into__isnull=True).order_by("nhs_number"))
    # Something for every back-office page to open: a quarantined record naming a demo patient, and an opt-out.
    feed = Feed.objects.order_by("code").first()
    run = IngestRun.objects.filter(feed=feed).order_by("pk").first()
    QuarantinedRecord.objects.create(
        feed=feed,
        ingest_run=run,
        reason=QuarantinedRecord.Reason.DEMOGRAPHIC_MISMATCH,
        detail="birth date does not match",
        raw_payload="{}",
        payload_hash="1" * 64,
        nhs_number=patients[0].nhs_number,
    )
    credential = PartnerCredential.objects.create(
        organisation=feed.organisation, name="walk", key_prefix="sc_walkwalk", key_hash="1" * 64
    )
    PushedBatch.objects.create(
        feed=feed,
        credential=credential,
        content_type="application/fhir+json",
        payload=b"{}",
        size=2,
        checksum="2" * 64,
        status=PushedBatch.Status.FAILED,
        error="walked",
    )
    if not NationalOptOut.objects.exists():
        NationalOptOut.objects.create(patient=patients[-1], source=NationalOptOut.Source.STAFF)
    visible, hidden = {}, {}
    for username, user in users.items():
        seen = set(visible_patients(user).values_list("pk", flat=True))
        visible[username] = next((p for p in patients if p.pk in seen), patients[0])
        hidden[username] = next((p for p in reversed(patients) if p.pk not in seen), patients[-1])
    return Demo(
        users=users,
        numbers={number for number in Patient.objects.values_list("nhs_number", flat=True) if number},
        visible=visible,
        hidden=hidden,
    )


def test_every_url_is_classified_for_the_walk(db):
    names = url_names(get_resolver().url_patterns)
    assert sorted(name for name in names if expectation_of(name) is None) == []
    assert names >= _PATIENT_ADMIN


def test_every_view_that_touches_a_patient_audits_it_with_its_own_action(db, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    demo = _demo_load()
    assert set(demo.users) == set(DEMO_USERS)
    patterns = sorted(_all_patterns(get_resolver().url_patterns), key=lambda item: item[0])

    for username in DEMO_USERS:
        signed_in: list[Client] = []

        def sign_in(fresh: bool, user=demo.users[username], signed_in=signed_in) -> Client:
            if fresh or not signed_in:
                signed_in[:] = [_sign_in(user)]
            return signed_in[0]

        for name, pattern in patterns:
            _walk_url(demo, name, pattern, username, sign_in)
            if name in SIGN_OUTS:
                signed_in.clear()

    assert not demo.problems, "\n".join(demo.problems)
