"""The bench's users, made as the back office makes them, and signed in through the real sign-in pages.

What always holds:
- every user is made through the same services as any other (`consent.services.staff_profile_add`), with a role
  from the roles table, at a partner the population made; nothing about them is special to the bench;
- every session is made by the real pages over HTTP, against the server being measured: the password form, then,
  for those who must pass a second factor (privacy officers and back-office staff, `consent.mfa.mfa_required`), the
  code form with the current code of a confirmed TOTP device (django-otp), computed as an authenticator app does;
- clinicians reach their patients only through the relationships the population wrote (their practice's, or the
  acute trust's), so every record open goes through `consent.policy.decide` and is allowed by it.

Each user is made for one scale (`bench.gp.<scale>.<n>`), so a TOTP code is never offered twice to one device.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.roles import JobRole
from consent.services import staff_profile_add
from records.bench.population import ACUTE_TRUST, Population
from records.bench.rows import BenchmarkError
from records.models import Organisation, Patient, RecordEntry

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# How many patients each clinician's list holds (drawn at random from those they have a relationship with).
PATIENTS_PER_LIST = 500


@dataclass(frozen=True)
class Reader:
    """One signed-in user: who they are, their session cookies, and the patients they may open."""

    username: str
    kind: str
    cookies: dict[str, str]
    patients: list[str]
    # The same patients' NHS numbers, for the search (typed into a POST body, never a URL).
    numbers: list[str]
    # And their family names and birth dates (ISO), for the search by name and date of birth.
    names: tuple[tuple[str, str], ...] = ()


def _user_create(username: str, password: str, *, staff: bool = False) -> object:
    user = get_user_model().objects.create_user(username=username, password=password, is_staff=staff)
    return user


def _totp_device(user: object) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def _sign_in(base: str, username: str, password: str, device: TOTPDevice | None) -> dict[str, str]:
    """Sign in through the login page (and the second-factor page); the session's cookies."""
    with requests.Session() as session:
        page = session.get(f"{base}/accounts/login/", timeout=30)
        token = _csrf_of(page)
        answer = session.post(
            f"{base}/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if answer.status_code != 302:
            raise BenchmarkError(f"signing in {username} answered {answer.status_code}")
        if device is not None:
            page = session.get(f"{base}/accounts/mfa/verify/", timeout=30)
            device.refresh_from_db()
            code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
            answer = session.post(
                f"{base}/accounts/mfa/verify/",
                data={"code": code, "csrfmiddlewaretoken": _csrf_of(page)},
                headers={"Referer": f"{base}/accounts/mfa/verify/"},
                allow_redirects=False,
                timeout=30,
            )
            if answer.status_code != 302:
                raise BenchmarkError(f"{username}'s second factor answered {answer.status_code}")
        home = session.get(f"{base}/", allow_redirects=False, timeout=30)
        if home.status_code != 200:
            raise BenchmarkError(f"{username} is not signed in: the home page answered {home.status_code}")
        return {name: value or "" for name, value in session.cookies.items()}


def _csrf_of(page: requests.Response) -> str:
    found = _CSRF.search(page.text)
    if found is None:
        raise BenchmarkError(f"no CSRF token on {page.url} ({page.status_code})")
    return found.group(1)


def _patients_of_group(
    group_id: int, *, limit: int, seed: int
) -> tuple[list[str], list[str], tuple[tuple[str, str], ...]]:
    """Public ids and NHS numbers of patients the group holds a current relationship with, a seeded random sample."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [((seed % 1000) / 1000.0)])
        cursor.execute(
            "SELECT p.public_id, p.nhs_number, p.family_name, p.birth_date FROM records_patient p WHERE p.id IN ("
            " SELECT content_object_id FROM consent_legitimaterelationship WHERE group_id = %s"
            "  AND (valid_until IS NULL OR valid_until > now())"
            ") ORDER BY random() LIMIT %s",
            [group_id, limit],
        )
        rows = cursor.fetchall()
    return (
        [str(row[0]) for row in rows],
        [str(row[1]) for row in rows],
        tuple((str(row[2]), row[3].isoformat()) for row in rows),
    )


def deep_patients(minimum: int, maximum: int, *, limit: int) -> list[str]:
    """Public ids of patients with between `minimum` and `maximum` entries who have been at the acute trust."""
    group_id = Organisation.objects.get(ods_code=ACUTE_TRUST).group_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.public_id FROM {Patient._meta.db_table} p "  # noqa: S608 - table names only
            f"JOIN (SELECT patient_id FROM {RecordEntry._meta.db_table} GROUP BY patient_id "
            "      HAVING count(*) BETWEEN %s AND %s) deep ON deep.patient_id = p.id "
            "WHERE EXISTS (SELECT 1 FROM consent_legitimaterelationship r WHERE r.content_object_id = p.id "
            "  AND r.group_id = %s AND (r.valid_until IS NULL OR r.valid_until > now())) "
            "ORDER BY p.id LIMIT %s",
            [minimum, maximum, group_id, limit],
        )
        return [str(row[0]) for row in cursor.fetchall()]


def readers_sign_in(
    base: str, population: Population, *, scale: int, clinicians: int, officers: int
) -> dict[str, list[Reader]]:
    """Make and sign in the bench's users for one scale: GPs (one per practice in turn), an emergency department
    doctor at the acute trust, privacy officers at the ICB and back-office staff who may view feeds."""
    password = secrets.token_urlsafe(18)
    tag = f"{scale}.{int(time.time()) % 100000}"
    readers: dict[str, list[Reader]] = {"clinician": [], "ed": [], "officer": [], "backoffice": []}
    for number in range(clinicians):
        practice = population.practices[number % len(population.practices)]
        user = _user_create(f"bench.gp.{tag}.{number}", password)
        staff_profile_add(user_id=user.pk, organisation=practice, job_role=JobRole.CLINICAL_PRACTITIONER)  # type: ignore[attr-defined]
        cookies = _sign_in(base, user.get_username(), password, None)  # type: ignore[attr-defined]
        patients, numbers, names = _patients_of_group(practice.group_id, limit=PATIENTS_PER_LIST, seed=number)
        readers["clinician"].append(
            Reader(user.get_username(), "clinician", cookies, patients, numbers, names)  # type: ignore[attr-defined]
        )
    acute = Organisation.objects.get(ods_code=ACUTE_TRUST)
    user = _user_create(f"bench.ed.{tag}", password)
    staff_profile_add(user_id=user.pk, organisation=acute, job_role=JobRole.CLINICAL_PRACTITIONER)  # type: ignore[attr-defined]
    cookies = _sign_in(base, user.get_username(), password, None)  # type: ignore[attr-defined]
    readers["ed"].append(Reader(user.get_username(), "ed", cookies, [], []))  # type: ignore[attr-defined]
    icb = Organisation.objects.get(ods_code="QUE")
    view_feed = Permission.objects.get(codename="view_feed", content_type__app_label="records")
    # Privacy officers read the access reports of the patients the clinicians open.
    everyone = [patient for reader in readers["clinician"] for patient in reader.patients]
    for number in range(officers):
        user = _user_create(f"bench.po.{tag}.{number}", password)
        staff_profile_add(user_id=user.pk, organisation=icb, job_role=JobRole.PRIVACY_OFFICER)  # type: ignore[attr-defined]
        cookies = _sign_in(base, user.get_username(), password, _totp_device(user))  # type: ignore[attr-defined]
        readers["officer"].append(Reader(user.get_username(), "officer", cookies, everyone, []))  # type: ignore[attr-defined]
        staff = _user_create(f"bench.admin.{tag}.{number}", password, staff=True)
        staff.user_permissions.add(view_feed)  # type: ignore[attr-defined]
        cookies = _sign_in(base, staff.get_username(), password, _totp_device(staff))  # type: ignore[attr-defined]
        readers["backoffice"].append(Reader(staff.get_username(), "backoffice", cookies, [], []))  # type: ignore[attr-defined]
    return readers
