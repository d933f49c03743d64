"""The IG team's objection cases: every step and the steps a case is not ready for, the actors in the change history,
deadlines with time travel, objections entered by staff, who reaches the pages, the audited match, and escaping what
a patient typed."""

from datetime import UTC, date, datetime, timedelta

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessEvent
from consent.models import Objection
from consent.objections import (
    ObjectionStepRefused,
    objection_clinical_input_record,
    objection_decide,
    objection_extend,
    objection_identity_not_found,
    objection_identity_verify,
    objection_inform,
    objection_list,
    objection_receive,
    objection_withdraw,
    objections_overdue,
)
from consent.policy import decide as policy_decide
from records.sections import Section
from tests.builders import make_user

Status = Objection.Status
MATCH = AccessEvent.Action.MATCH_PATIENT
PATIENTS_RIGHTS = AccessEvent.Purpose.PATIENTS_RIGHTS

SUBMISSION = {
    "channel": Objection.Channel.WEB_FORM,
    "given_name": "Brian",
    "family_name": "Barton",
    "birth_date": date(1962, 7, 1),
    "nhs_number": "9990000026",
    "contact_by": Objection.ContactBy.EMAIL,
    "contact_detail": "brian@example.org",
    "scope_sections": [Section.MEDICATIONS, Section.PROBLEMS],
    "scope_from_partners": ["RT1"],
}
# What a page may not show to anyone outside the IG team: the requester's words and the patient held.
CASE_FIELDS = ("Brian", "Barton", "BARTON", "brian@example.org", "9990000026", "999 000 0026")


def manage_objections() -> Permission:
    return Permission.objects.get(codename="manage_objections", content_type__app_label="consent")


@pytest.fixture
def ig(cast):
    """privacy.fay, given the IG team's permission."""
    cast.privacy_fay.user_permissions.add(manage_objections())
    return cast.privacy_fay


def receive(**overrides) -> Objection:
    objection, _ = objection_receive(**{**SUBMISSION, **overrides})
    return objection


def verify(objection: Objection, cast, by) -> Objection:
    return objection_identity_verify(objection_id=objection.pk, patient_id=cast.patient_b.pk, by=by)


def review(objection: Objection, by) -> Objection:
    return objection_clinical_input_record(
        objection_id=objection.pk, by=by, clinician="Dr Hale, GP", text="No safety concern in withholding."
    )


def at(status: str, cast, by, **overrides) -> Objection:
    """A fresh case brought to `status` through the workflow's own steps."""
    objection = receive(**overrides)
    if status == Status.RECEIVED:
        return objection
    if status == Status.NOT_FOUND:
        return objection_identity_not_found(objection_id=objection.pk, by=by, note="No such NHS number.")
    if status == Status.WITHDRAWN:
        return objection_withdraw(objection_id=objection.pk, by=by, note="Phoned to withdraw.")
    objection = verify(objection, cast, by)
    if status == Status.IDENTITY_VERIFIED:
        return objection
    objection = review(objection, by)
    if status == Status.UNDER_REVIEW:
        return objection
    if status == Status.PARTLY_UPHELD:
        return objection_decide(
            objection_id=objection.pk, by=by, outcome=status, sections=[Section.MEDICATIONS]
        )
    if status == Status.NOT_UPHELD:
        return objection_decide(
            objection_id=objection.pk,
            by=by,
            outcome=status,
            refusal_reason=Objection.RefusalReason.SAFEGUARDING,
        )
    return objection_decide(objection_id=objection.pk, by=by, outcome=status)


def snapshot(objection: Objection) -> dict:
    objection.refresh_from_db()
    return {field.attname: getattr(objection, field.attname) for field in Objection._meta.concrete_fields}


# The workflow.


def test_a_case_goes_from_receipt_to_the_patient_told_and_each_step_says_who_and_when(cast, ig):
    objection = receive()
    assert (objection.status, objection.patient_id) == (Status.RECEIVED, None)

    objection = objection_identity_verify(
        objection_id=objection.pk, patient_id=cast.patient_b.pk, by=ig, note="Called back on the number held."
    )
    assert (objection.status, objection.patient_id, objection.identity_checked_by) == (
        Status.IDENTITY_VERIFIED,
        cast.patient_b.pk,
        ig,
    )
    assert objection.identity_checked_at is not None

    objection = review(objection, ig)
    assert (objection.status, objection.clinical_input_by) == (Status.UNDER_REVIEW, "Dr Hale, GP")
    assert objection.clinical_input_at is not None

    objection = objection_decide(
        objection_id=objection.pk, by=ig, outcome=Status.UPHELD, break_glass_may_override=True
    )
    assert objection.status == Status.UPHELD and objection.is_enforced
    assert (objection.decided_by, objection.break_glass_may_override) == (ig, True)
    # Upheld is all that was asked.
    assert objection.upheld_sections == sorted([Section.MEDICATIONS, Section.PROBLEMS])
    assert objection.upheld_from_partners == ["RT1"]
    assert not objection.upheld_whole_record and objection.upheld_to_partners == []

    objection = objection_inform(objection_id=objection.pk, by=ig)
    assert objection.informed_by == ig and objection.informed_at is not None

    objection.refresh_from_db()
    assert (objection.status, objection.informed_by_id) == (Status.UPHELD, ig.pk)


def test_every_step_is_in_the_change_history_with_its_actor(cast, ig):
    colleague = make_user("privacy.gil", cast.icb, None)
    objection = receive()
    verify(objection, cast, ig)
    review(objection, colleague)
    objection_decide(objection_id=objection.pk, by=ig, outcome=Status.UPHELD)
    objection_inform(objection_id=objection.pk, by=colleague)
    objection_withdraw(objection_id=objection.pk, by=ig, note="Changed their mind.")

    updates = LogEntry.objects.get_for_object(objection).filter(action=LogEntry.Action.UPDATE).order_by("pk")

    assert [(entry.actor, entry.changes_dict.get("status", [None, None])[1]) for entry in updates] == [
        (ig, Status.IDENTITY_VERIFIED),
        (colleague, Status.UNDER_REVIEW),
        (ig, Status.UPHELD),
        (colleague, None),
        (ig, Status.WITHDRAWN),
    ]
    assert "informed_at" in updates[3].changes_dict


def test_no_matching_patient_is_recorded_and_a_match_may_follow_when_the_patient_gives_more(cast, ig):
    objection = objection_identity_not_found(objection_id=receive().pk, by=ig, note="No such NHS number.")
    assert (objection.status, objection.identity_note, objection.is_open) == (
        Status.NOT_FOUND,
        "No such NHS number.",
        False,
    )

    objection = verify(objection, cast, ig)

    assert (objection.status, objection.patient_id) == (Status.IDENTITY_VERIFIED, cast.patient_b.pk)


def test_a_second_opinion_replaces_the_clinical_input_and_the_history_keeps_the_first(cast, ig):
    objection = at(Status.UNDER_REVIEW, cast, ig)

    objection_clinical_input_record(
        objection_id=objection.pk, by=ig, clinician="Dr Ng, psychiatrist", text="Agree."
    )

    objection.refresh_from_db()
    assert (objection.clinical_input_by, objection.status) == ("Dr Ng, psychiatrist", Status.UNDER_REVIEW)
    texts = [
        entry.changes_dict["clinical_input"][1]
        for entry in LogEntry.objects.get_for_object(objection)
        if "clinical_input" in entry.changes_dict
    ]
    assert "No safety concern in withholding." in texts and "Agree." in texts


STEPS = {
    "verify": lambda objection, cast, by: verify(objection, cast, by),
    "not-found": lambda objection, cast, by: objection_identity_not_found(
        objection_id=objection.pk, by=by, note="Not held."
    ),
    "clinical-input": lambda objection, cast, by: review(objection, by),
    "decide": lambda objection, cast, by: objection_decide(
        objection_id=objection.pk, by=by, outcome=Status.UPHELD
    ),
    "inform": lambda objection, cast, by: objection_inform(objection_id=objection.pk, by=by),
    "extend": lambda objection, cast, by: objection_extend(
        objection_id=objection.pk, by=by, due_at=objection.due_at + timedelta(days=14), reason="Complex case."
    ),
    "withdraw": lambda objection, cast, by: objection_withdraw(
        objection_id=objection.pk, by=by, note="Withdrawn."
    ),
}
ALLOWED = {
    Status.RECEIVED: {"verify", "not-found", "extend", "withdraw"},
    Status.NOT_FOUND: {"verify", "inform", "withdraw"},
    Status.IDENTITY_VERIFIED: {"clinical-input", "extend", "withdraw"},
    Status.UNDER_REVIEW: {"clinical-input", "decide", "extend", "withdraw"},
    Status.UPHELD: {"inform", "withdraw"},
    Status.PARTLY_UPHELD: {"inform", "withdraw"},
    Status.NOT_UPHELD: {"inform", "withdraw"},
    Status.WITHDRAWN: set(),
}


@pytest.mark.parametrize("status", list(ALLOWED))
@pytest.mark.parametrize("step", list(STEPS))
def test_each_step_is_taken_only_from_the_states_that_allow_it_and_a_refusal_changes_nothing(
    cast, ig, status, step
):
    objection = at(status, cast, ig)
    before = snapshot(objection)
    history = LogEntry.objects.get_for_object(objection).count()

    if step in ALLOWED[status]:
        STEPS[step](objection, cast, ig)
        assert snapshot(objection) != before
    else:
        with pytest.raises(ObjectionStepRefused, match=objection.reference):
            STEPS[step](objection, cast, ig)
        assert snapshot(objection) == before
        assert LogEntry.objects.get_for_object(objection).count() == history


def test_the_patient_is_told_once(cast, ig):
    objection = at(Status.NOT_UPHELD, cast, ig)
    objection_inform(objection_id=objection.pk, by=ig)

    with pytest.raises(ObjectionStepRefused, match="The patient was told on"):
        objection_inform(objection_id=objection.pk, by=ig)


# Deciding.


def decide(objection: Objection, by, **decision) -> Objection:
    return objection_decide(objection_id=objection.pk, by=by, **decision)


def test_a_partly_upheld_case_upholds_only_the_parts_given_and_keeps_what_was_asked(cast, ig):
    objection = at(Status.UNDER_REVIEW, cast, ig)

    objection = decide(
        objection,
        ig,
        outcome=Status.PARTLY_UPHELD,
        from_partners=["RT1"],
        refusal_reason=Objection.RefusalReason.CARE_NOT_OTHERWISE,
        note="Medications and problems are needed by the out-of-hours service.",
    )

    assert objection.status == Status.PARTLY_UPHELD and objection.is_enforced
    assert (objection.upheld_sections, objection.upheld_from_partners) == ([], ["RT1"])
    assert objection.scope_sections == sorted([Section.MEDICATIONS, Section.PROBLEMS])
    assert objection.refusal_reason == Objection.RefusalReason.CARE_NOT_OTHERWISE


def test_a_case_asking_for_the_whole_record_may_be_upheld_in_any_part_of_it(cast, ig):
    objection = at(
        Status.UNDER_REVIEW, cast, ig, scope_whole_record=True, scope_sections=[], scope_from_partners=[]
    )

    objection = decide(
        objection, ig, outcome=Status.PARTLY_UPHELD, sections=[Section.SOCIAL_CONTEXT], to_partners=["CCC01"]
    )

    assert (objection.upheld_whole_record, objection.upheld_sections, objection.upheld_to_partners) == (
        False,
        [Section.SOCIAL_CONTEXT],
        ["CCC01"],
    )


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"outcome": Status.PARTLY_UPHELD}, "choose which parts"),
        ({"outcome": Status.PARTLY_UPHELD, "to_partners": ["RGT"]}, "not asked for: RGT"),
        ({"outcome": Status.PARTLY_UPHELD, "sections": [Section.ALLERGIES]}, "not asked for"),
        (
            {"outcome": Status.PARTLY_UPHELD, "whole_record": True},
            "did not object to sharing the whole record",
        ),
        (
            {
                "outcome": Status.PARTLY_UPHELD,
                "sections": [Section.MEDICATIONS, Section.PROBLEMS],
                "from_partners": ["RT1"],
            },
            "all that was asked",
        ),
        ({"outcome": Status.NOT_UPHELD}, "choose a reason"),
        (
            {
                "outcome": Status.NOT_UPHELD,
                "refusal_reason": "safeguarding",
                "sections": ["medications-and-medical-devices"],
            },
            "choose no parts",
        ),
        (
            {
                "outcome": Status.NOT_UPHELD,
                "refusal_reason": "safeguarding",
                "break_glass_may_override": True,
            },
            "break-glass",
        ),
        ({"outcome": Status.UPHELD, "refusal_reason": "safeguarding"}, "no refusal reason"),
        ({"outcome": Status.UPHELD, "sections": [Section.MEDICATIONS]}, "choose no parts"),
        ({"outcome": Status.WITHDRAWN}, "must be upheld, partly upheld or not upheld"),
    ],
)
def test_a_decision_outside_what_was_asked_or_without_its_reason_is_refused_and_changes_nothing(
    cast, ig, decision, message
):
    objection = at(Status.UNDER_REVIEW, cast, ig)
    before = snapshot(objection)

    with pytest.raises(ValueError, match=message):
        decide(objection, ig, **decision)

    assert snapshot(objection) == before


def test_an_unknown_refusal_reason_is_refused(cast, ig):
    objection = at(Status.UNDER_REVIEW, cast, ig)
    with pytest.raises(ValueError):
        decide(objection, ig, outcome=Status.NOT_UPHELD, refusal_reason="because")
    assert snapshot(objection)["status"] == Status.UNDER_REVIEW


def test_a_case_asking_for_the_whole_record_names_only_real_sections_and_partners(cast, ig):
    objection = at(
        Status.UNDER_REVIEW, cast, ig, scope_whole_record=True, scope_sections=[], scope_from_partners=[]
    )
    with pytest.raises(ValueError, match="not sections or partners: XXX99"):
        decide(objection, ig, outcome=Status.PARTLY_UPHELD, from_partners=["XXX99"])


@pytest.mark.parametrize(
    "status", [Status.UPHELD, Status.PARTLY_UPHELD, Status.NOT_UPHELD, Status.UNDER_REVIEW]
)
def test_a_withdrawn_objection_is_no_longer_enforced_and_keeps_its_history(cast, ig, status):
    objection = at(status, cast, ig)

    objection = objection_withdraw(objection_id=objection.pk, by=ig, note="Wrote to withdraw.")

    assert (objection.status, objection.is_enforced, objection.is_open) == (Status.WITHDRAWN, False, False)
    assert objection.withdrawn_at is not None and objection.withdrawn_note == "Wrote to withdraw."
    assert not Objection.objects.filter(pk=objection.pk, status__in=Objection.ENFORCED).exists()


def test_an_upheld_objection_holds_on_every_read_until_it_is_withdrawn(cast, ig):
    objection = receive(
        given_name="Alice",
        family_name="Ashby",
        nhs_number="9990000018",
        scope_sections=[],
        scope_from_partners=[],
        scope_to_partners=["D81001"],
    )
    objection_identity_verify(objection_id=objection.pk, patient_id=cast.patient_a.pk, by=ig)
    review(objection, ig)
    assert decide_for(cast).allowed

    objection_decide(objection_id=objection.pk, by=ig, outcome=Status.UPHELD)
    assert not decide_for(cast).allowed

    objection_withdraw(objection_id=objection.pk, by=ig, note="Phoned: happy for the practice to see it.")
    assert decide_for(cast).allowed


def decide_for(cast):
    """Whether gp.ada, at the patient's own practice, may open Alice Ashby's record now."""
    return policy_decide(cast.gp_ada, cast.patient_a, AccessEvent.Action.VIEW_RECORD)


@pytest.mark.parametrize("note", ["", "   "])
def test_withdrawing_or_not_finding_needs_a_note(cast, ig, note):
    objection = receive()
    with pytest.raises(ValueError, match="is needed"):
        objection_withdraw(objection_id=objection.pk, by=ig, note=note)
    with pytest.raises(ValueError, match="is needed"):
        objection_identity_not_found(objection_id=objection.pk, by=ig, note=note)
    assert snapshot(objection)["status"] == Status.RECEIVED


# Deadlines, with the clock moved instead of waited for.


@pytest.fixture
def frozen(monkeypatch):
    """Freeze `django.utils.timezone.now` (which `consent.objections` reads at call time) at a given moment."""

    def freeze(moment: datetime) -> datetime:
        monkeypatch.setattr(timezone, "now", lambda: moment)
        return moment

    return freeze


def test_a_case_is_overdue_once_its_due_date_has_passed_by_the_clock_at_the_time_of_asking(cast, ig, frozen):
    received = datetime(2026, 1, 31, 9, tzinfo=UTC)
    objection = receive(received_at=received)
    assert objection.due_at == datetime(2026, 2, 28, 9, tzinfo=UTC)

    frozen(objection.due_at)
    assert list(objections_overdue()) == []
    frozen(objection.due_at + timedelta(seconds=1))
    assert list(objections_overdue()) == [objection]
    assert [case.is_overdue for case in objection_list()] == [True]


def test_an_extension_moves_the_due_date_later_with_a_reason_and_the_case_is_no_longer_overdue(
    cast, ig, frozen
):
    objection = receive(received_at=datetime(2026, 1, 10, 9, tzinfo=UTC))
    frozen(datetime(2026, 2, 12, 9, tzinfo=UTC))
    assert list(objections_overdue()) == [objection]

    objection = objection_extend(
        objection_id=objection.pk,
        by=ig,
        due_at=datetime(2026, 3, 10, 9, tzinfo=UTC),
        reason="Waiting for the mental health trust's clinical view.",
    )

    assert objection.due_at == datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert objection.extension_reason == "Waiting for the mental health trust's clinical view."
    assert list(objections_overdue()) == []
    frozen(datetime(2026, 3, 10, 9, 1, tzinfo=UTC))
    assert list(objections_overdue()) == [objection]
    entry = LogEntry.objects.get_for_object(objection).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == ig and set(entry.changes_dict) == {"due_at", "extension_reason"}


@pytest.mark.parametrize(
    ("new_due", "reason", "message"),
    [
        (datetime(2026, 2, 10, 9, tzinfo=UTC), "Complex.", "later than it is now"),
        (datetime(2026, 2, 9, 9, tzinfo=UTC), "Complex.", "later than it is now"),
        (datetime(2026, 3, 1, 9, tzinfo=UTC), "", "is needed"),
        (datetime(2026, 4, 10, 9, 1, tzinfo=UTC), "Complex.", "at the latest 3 months after receipt"),
    ],
)
def test_an_extension_backwards_without_a_reason_or_beyond_three_months_is_refused(
    cast, ig, frozen, new_due, reason, message
):
    objection = receive(received_at=datetime(2026, 1, 10, 9, tzinfo=UTC))
    frozen(datetime(2026, 1, 20, 9, tzinfo=UTC))
    before = snapshot(objection)

    with pytest.raises(ValueError, match=message):
        objection_extend(objection_id=objection.pk, by=ig, due_at=new_due, reason=reason)

    assert snapshot(objection) == before


def test_an_extension_to_a_date_already_past_is_refused(cast, ig, frozen):
    objection = receive(received_at=datetime(2026, 1, 10, 9, tzinfo=UTC))
    frozen(datetime(2026, 3, 20, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="passed already"):
        objection_extend(
            objection_id=objection.pk, by=ig, due_at=datetime(2026, 3, 1, 9, tzinfo=UTC), reason="Late."
        )
    assert objection_extend(
        objection_id=objection.pk, by=ig, due_at=datetime(2026, 4, 1, 9, tzinfo=UTC), reason="Late."
    ).due_at == datetime(2026, 4, 1, 9, tzinfo=UTC)


def test_decided_and_withdrawn_cases_are_never_overdue(cast, ig, frozen):
    for status in (Status.UPHELD, Status.NOT_UPHELD, Status.WITHDRAWN, Status.NOT_FOUND):
        at(
            status,
            cast,
            ig,
            received_at=datetime(2026, 1, 1, 9, tzinfo=UTC),
            contact_detail=f"{status}@example.org",
        )
    waiting = receive(received_at=datetime(2026, 1, 1, 9, tzinfo=UTC), contact_detail="waiting@example.org")
    frozen(datetime(2026, 6, 1, 9, tzinfo=UTC))

    assert list(objections_overdue()) == [waiting]


# The pages: only the IG team reaches them.


def case_url(objection: Objection, name: str = "objection-detail") -> str:
    return reverse(f"records:{name}", kwargs={"reference": objection.reference})


STEP_POSTS = {
    "objection-identity-lookup": {"identity-nhs_number": "9990000026"},
    "objection-identity-verify": {"verify-nhs_number": "9990000026", "verify-note": "Checked."},
    "objection-identity-not-found": {"not-found-note": "Not held."},
    "objection-clinical-input": {"clinical-clinician": "Dr Hale", "clinical-text": "Fine."},
    "objection-decide": {"decision-outcome": "upheld"},
    "objection-inform": {},
    "objection-extend": {"extend-due_on": "2099-01-01", "extend-reason": "Complex."},
    "objection-withdraw": {"withdraw-note": "Withdrawn."},
}


@pytest.mark.parametrize("who", ["gp_ada", "admin_gus", "privacy_fay", "reception_dan"])
def test_no_one_but_the_ig_team_reaches_a_page_and_nothing_is_shown_or_changed(client, cast, who):
    # privacy.fay without the permission is not the IG team: the role alone opens nothing.
    colleague = make_user("privacy.ida", cast.icb, None)
    colleague.user_permissions.add(manage_objections())
    objection = at(Status.NOT_UPHELD, cast, colleague)
    fresh = receive(contact_detail="fresh@example.org")
    before = {case.pk: snapshot(case) for case in (objection, fresh)}
    events = AccessEvent.objects.count()
    client.force_login(getattr(cast, who))

    responses = [
        client.get(reverse("records:objection-list")),
        client.get(reverse("records:objection-list"), {"overdue": "on"}),
        client.get(reverse("records:objection-new")),
        client.post(reverse("records:objection-new"), {"channel": "phone"}),
        client.get(case_url(objection)),
        client.get(case_url(objection, "objection-letter")),
        client.get(case_url(fresh)),
    ]
    responses += [client.post(case_url(fresh, name), data) for name, data in STEP_POSTS.items()]
    responses.append(client.post(case_url(objection, "objection-inform")))

    for response in responses:
        assert response.status_code == 404
        text = response.content.decode()
        assert objection.reference not in text and fresh.reference not in text
        for value in CASE_FIELDS:
            assert value not in text
        assert reverse("records:objection-list") not in text
    assert {case.pk: snapshot(case) for case in (objection, fresh)} == before
    assert Objection.objects.count() == 2
    # The two attempts that named a patient, to look one up and to verify, are in the patient's trail as refused;
    # nothing else is.
    assert AccessEvent.objects.count() == events + 2
    refused = AccessEvent.objects.filter(action=MATCH)
    assert {
        (event.outcome, event.purpose, event.patient_id, event.query, event.user_id) for event in refused
    } == {
        (AccessEvent.Outcome.DENIED, PATIENTS_RIGHTS, cast.patient_b.pk, "9990000026", getattr(cast, who).pk)
    }
    assert refused.count() == 2


def test_the_ig_team_may_be_a_group_holding_the_permission(client, cast):
    team = Group.objects.create(name="Information governance")
    team.permissions.add(manage_objections())
    member = make_user("ig.hana", cast.icb, None)
    member.groups.add(team)
    objection = receive()
    client.force_login(member)

    assert client.get(reverse("records:objection-list")).status_code == 200
    assert client.get(case_url(objection)).status_code == 200


def test_the_ig_team_sees_the_objections_link_and_no_one_else_does(client, cast, ig):
    link = reverse("records:objection-list")
    client.force_login(ig)
    assert link in client.get(reverse("records:home")).content.decode()
    for who in ("gp_ada", "ed_cara", "admin_gus"):
        client.force_login(getattr(cast, who))
        assert link not in client.get(reverse("records:home")).content.decode()


def test_the_list_shows_open_cases_first_by_due_date_marks_the_overdue_and_names_no_one(
    client, cast, ig, frozen
):
    now = frozen(datetime(2026, 3, 1, 12, tzinfo=UTC))
    overdue = receive(received_at=now - timedelta(days=40), contact_detail="late@example.org")
    soon = receive(received_at=now - timedelta(days=20), contact_detail="soon@example.org")
    later = receive(received_at=now - timedelta(days=2), contact_detail="later@example.org")
    decided = at(
        Status.NOT_UPHELD, cast, ig, received_at=now - timedelta(days=50), contact_detail="done@example.org"
    )
    client.force_login(ig)

    response = client.get(reverse("records:objection-list"))

    assert response.status_code == 200
    text = response.content.decode()
    positions = [text.index(case.reference) for case in (overdue, soon, later, decided)]
    assert positions == sorted(positions)
    assert text.count("overdue-badge") == 1
    assert text.index("overdue-badge") < text.index(soon.reference)
    for value in CASE_FIELDS:
        assert value not in text

    only_overdue = client.get(reverse("records:objection-list"), {"overdue": "on"}).content.decode()
    assert overdue.reference in only_overdue
    assert all(case.reference not in only_overdue for case in (soon, later, decided))

    not_upheld = client.get(reverse("records:objection-list"), {"status": "not-upheld"}).content.decode()
    assert decided.reference in not_upheld and overdue.reference not in not_upheld

    bad = client.get(reverse("records:objection-list"), {"status": "<b>nonsense</b>"})
    assert bad.status_code == 400 and "Choose a status from the list." in bad.content.decode()
    assert "<b>nonsense</b>" not in bad.content.decode()


# The case page, its steps as forms, and the audited match.


def test_the_case_page_shows_everything_given_and_the_history_with_actors(client, cast, ig):
    objection = at(Status.UNDER_REVIEW, cast, ig)
    client.force_login(ig)

    response = client.get(case_url(objection))

    assert response.status_code == 200
    text = response.content.decode()
    for value in ("Brian Barton", "brian@example.org", "999 000 0026", "1 Jul 1962", "Medications"):
        assert value in text
    assert "Data from Cambridgeshire and Peterborough NHS FT (RT1) not shared" in text
    assert "Dr Hale, GP" in text and "No safety concern in withholding." in text
    assert "Matched to the patient with NHS number" in text
    assert "Change history" in text and text.count('class="history-actor">privacy.fay<') == 2
    # The page builds the decision form from what was asked: ticked boxes of those parts only.
    assert 'name="decision-sections" value="medications-and-medical-devices"' in text
    assert 'name="decision-sections" value="allergies-and-adverse-reactions"' not in text
    assert 'name="decision-from_partners" value="RT1"' in text
    # Reading the case opens no record.
    assert not AccessEvent.objects.exists()


def test_a_look_up_shows_only_what_the_match_needs_and_is_audited(client, cast, ig):
    cast.patient_b.postcode = "PE13 1AA"
    cast.patient_b.address = "2 Fen Lane, Wisbech"
    cast.patient_b.save()
    objection = receive()
    client.force_login(ig)

    response = client.post(
        case_url(objection, "objection-identity-lookup"), {"identity-nhs_number": "999 000 0026"}
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Brian BARTON" in text and "PE13 1AA" in text
    assert "2 Fen Lane" not in text and "Asthma" not in text
    event = AccessEvent.objects.get()
    assert (event.action, event.purpose, event.outcome, event.patient_id, event.query, event.user_id) == (
        MATCH,
        PATIENTS_RIGHTS,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
        "9990000026",
        ig.pk,
    )
    assert objection.reference in event.basis
    assert snapshot(objection)["status"] == Status.RECEIVED


def test_a_restricted_patients_postcode_is_not_shown_to_the_match(client, cast, ig):
    cast.patient_b.postcode = "PE13 1AA"
    cast.patient_b.is_restricted = True
    cast.patient_b.save()
    objection = receive()
    client.force_login(ig)

    text = client.post(
        case_url(objection, "objection-identity-lookup"), {"identity-nhs_number": "9990000026"}
    ).content.decode()

    assert "PE13 1AA" not in text and "Withheld: restricted record" in text


def test_a_look_up_that_finds_no_one_says_so_and_is_audited_as_not_found(client, cast, ig):
    objection = receive()
    client.force_login(ig)

    response = client.post(
        case_url(objection, "objection-identity-lookup"), {"identity-nhs_number": "9449305552"}
    )

    assert "No patient we hold has that NHS number." in response.content.decode()
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id, event.query) == (
        AccessEvent.Outcome.NOT_FOUND,
        None,
        "9449305552",
    )


def test_a_malformed_nhs_number_is_refused_before_any_look_up(client, cast, ig):
    objection = receive()
    client.force_login(ig)

    response = client.post(
        case_url(objection, "objection-identity-lookup"), {"identity-nhs_number": "9876544321"}
    )

    assert response.status_code == 400
    assert "check digit does not match" in response.content.decode()
    assert not AccessEvent.objects.exists()


def test_verifying_identity_through_the_page_matches_the_case_and_audits_the_match(client, cast, ig):
    objection = receive()
    client.force_login(ig)

    response = client.post(
        case_url(objection, "objection-identity-verify"),
        {"verify-nhs_number": "9990000026", "verify-note": "Date of birth and address agree."},
    )

    assert response.status_code == 303
    objection.refresh_from_db()
    assert (objection.status, objection.patient_id, objection.identity_checked_by) == (
        Status.IDENTITY_VERIFIED,
        cast.patient_b.pk,
        ig,
    )
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id, event.query) == (
        MATCH,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
        "9990000026",
    )
    assert LogEntry.objects.get_for_object(objection).filter(action=LogEntry.Action.UPDATE).get().actor == ig


def test_a_look_up_for_a_case_already_matched_is_refused_and_opens_no_patient(client, cast, ig):
    objection = at(Status.IDENTITY_VERIFIED, cast, ig)
    client.force_login(ig)

    response = client.post(
        case_url(objection, "objection-identity-lookup"), {"identity-nhs_number": "9990000026"}
    )

    assert response.status_code == 400
    assert "Verifying identity is not possible" in response.content.decode()
    assert not AccessEvent.objects.exists()


def test_each_step_through_the_page_with_a_partly_upheld_decision_as_ticked_boxes(client, cast, ig):
    objection = at(Status.IDENTITY_VERIFIED, cast, ig)
    client.force_login(ig)

    steps = [
        ("objection-clinical-input", {"clinical-clinician": "Dr Hale", "clinical-text": "Agree in part."}),
        (
            "objection-decide",
            {
                "decision-outcome": "partly-upheld",
                "decision-from_partners": ["RT1"],
                "decision-refusal_reason": "care-not-otherwise",
                "decision-break_glass_may_override": "on",
            },
        ),
        ("objection-inform", {}),
    ]
    for name, data in steps:
        assert client.post(case_url(objection, name), data).status_code == 303, name

    objection.refresh_from_db()
    assert (objection.status, objection.upheld_from_partners, objection.upheld_sections) == (
        Status.PARTLY_UPHELD,
        ["RT1"],
        [],
    )
    assert objection.break_glass_may_override and objection.informed_by == ig
    page = client.get(case_url(objection)).content.decode()
    assert "Partly upheld" in page and "Download the letter (PDF)" in page
    actors = {
        entry.actor
        for entry in LogEntry.objects.get_for_object(objection).filter(action=LogEntry.Action.UPDATE)
    }
    assert actors == {ig}


def test_a_step_the_case_is_not_ready_for_shows_why_on_the_page_and_changes_nothing(client, cast, ig):
    objection = receive()
    client.force_login(ig)
    before = snapshot(objection)

    response = client.post(case_url(objection, "objection-decide"), {"decision-outcome": "upheld"})

    assert response.status_code == 400
    assert "Deciding is not possible" in response.content.decode()
    assert snapshot(objection) == before


def test_extending_and_withdrawing_through_the_page(client, cast, ig):
    objection = receive()
    client.force_login(ig)
    new_due = timezone.localdate(objection.due_at) + timedelta(days=20)

    assert (
        client.post(
            case_url(objection, "objection-extend"),
            {"extend-due_on": new_due.isoformat(), "extend-reason": "Complex."},
        ).status_code
        == 303
    )
    backwards = client.post(
        case_url(objection, "objection-extend"),
        {"extend-due_on": (new_due - timedelta(days=1)).isoformat(), "extend-reason": "Again."},
    )
    assert backwards.status_code == 400 and "later than it is now" in backwards.content.decode()
    assert client.post(case_url(objection, "objection-withdraw"), {"withdraw-note": ""}).status_code == 400
    assert (
        client.post(case_url(objection, "objection-withdraw"), {"withdraw-note": "Phoned."}).status_code
        == 303
    )

    objection.refresh_from_db()
    assert timezone.localdate(objection.due_at) == new_due
    assert (objection.extension_reason, objection.status) == ("Complex.", Status.WITHDRAWN)


def test_a_case_that_does_not_exist_is_a_404_for_the_ig_team_too(client, cast, ig):
    client.force_login(ig)
    assert (
        client.get(reverse("records:objection-detail", kwargs={"reference": "OB-NOSUCH22"})).status_code
        == 404
    )


def test_what_a_patient_typed_is_escaped_on_the_case_page_and_in_its_history(client, cast, ig):
    script = "<script>alert('x')</script>"
    objection = receive(
        given_name=f"Brian{script}",
        reason_text=f"<b>Please</b> {script}",
        contact_detail=f"<img src=x onerror=alert(1)>{script}",
        requester_name=script,
        on_behalf=Objection.OnBehalf.WITH_AUTHORITY,
    )
    client.force_login(ig)

    text = client.get(case_url(objection)).content.decode()

    assert "<script>alert" not in text and "<img src=x" not in text and "<b>Please</b>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


# Objections entered by staff.


ENTRY = {
    "channel": "letter",
    "given_name": "Brian",
    "family_name": "Barton",
    "birth_date": "1962-07-01",
    "nhs_number": "999 000 0026",
    "contact_by": "post",
    "contact_detail": "3 Fen Road, Wisbech PE13 2BB",
    "on_behalf": "self",
    "scope_to_partners": ["RGT"],
}


def test_the_ig_team_records_a_letter_and_matches_it_to_the_patient_at_once(client, cast, ig):
    client.force_login(ig)
    received_on = timezone.localdate() - timedelta(days=3)

    response = client.post(
        reverse("records:objection-new"), {**ENTRY, "received_on": received_on.isoformat(), "match_now": "on"}
    )

    assert response.status_code == 303
    objection = Objection.objects.get()
    assert response["Location"] == case_url(objection)
    assert (objection.channel, objection.status, objection.patient_id) == (
        Objection.Channel.LETTER,
        Status.IDENTITY_VERIFIED,
        cast.patient_b.pk,
    )
    assert (objection.entered_by, objection.entered_for, objection.scope_to_partners) == (
        ig,
        cast.icb,
        ["RGT"],
    )
    assert timezone.localdate(objection.received_at) == received_on
    assert objection.due_at.date() > received_on
    event = AccessEvent.objects.get()
    assert (event.action, event.purpose, event.outcome, event.patient_id, event.query) == (
        MATCH,
        PATIENTS_RIGHTS,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
        "9990000026",
    )
    assert {entry.actor for entry in LogEntry.objects.get_for_object(objection)} == {ig}


def test_the_ig_team_records_a_phone_call_without_an_nhs_number_to_match_later(client, cast, ig):
    client.force_login(ig)
    data = {
        **ENTRY,
        "channel": "phone",
        "nhs_number": "",
        "address": "3 Fen Road, Wisbech",
        "postcode": "pe13 2bb",
        "received_on": timezone.localdate().isoformat(),
    }

    assert client.post(reverse("records:objection-new"), data).status_code == 303

    objection = Objection.objects.get()
    assert (objection.status, objection.postcode, objection.patient_id) == (Status.RECEIVED, "PE13 2BB", None)
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel": "web-form"}, "Choose from the list."),
        ({"scope_to_partners": []}, "Say what the patient objects to"),
        ({"scope_whole_record": "on"}, "not both"),
        ({"nhs_number": "9876544321"}, "check digit does not match"),
        ({"nhs_number": "", "postcode": ""}, "address and postcode"),
        ({"birth_date": "2999-01-01"}, "cannot be in the future"),
        ({"received_on": "2999-01-01"}, "cannot be in the future"),
        ({"on_behalf": "parent"}, "name of the person asking"),
        ({"contact_by": "email", "contact_detail": "not an address"}, "Enter an email address"),
        ({"given_name": "x" * 10_000}, "at most 100 characters"),
        ({"postcode": "<script>", "nhs_number": ""}, "Enter a UK postcode"),
    ],
)
def test_a_bad_entry_gets_a_clear_message_and_stores_nothing(client, cast, ig, change, message):
    client.force_login(ig)

    response = client.post(
        reverse("records:objection-new"), {**ENTRY, "received_on": timezone.localdate().isoformat(), **change}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Objection.objects.exists() and not AccessEvent.objects.exists()


def test_the_patients_own_gp_practice_records_an_objection_from_the_record_matched_at_once(client, cast):
    url = reverse("records:objection-new-for-patient", kwargs={"public_id": cast.patient_b.public_id})
    client.force_login(cast.gp_ben)

    form = client.get(url)

    assert form.status_code == 200
    assert "Brian BARTON" in form.content.decode() and "999 000 0026" in form.content.decode()
    opened = AccessEvent.objects.get()
    assert (opened.action, opened.purpose, opened.outcome, opened.patient_id) == (
        AccessEvent.Action.VIEW_RECORD,
        PATIENTS_RIGHTS,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
    )

    response = client.post(
        url,
        {
            "channel": "in-person",
            "received_on": timezone.localdate().isoformat(),
            "contact_by": "phone",
            "contact_detail": "01945 000002",
            "on_behalf": "self",
            "scope_from_partners": ["RT1"],
            "reason_text": "Told the practice nurse.",
        },
    )

    assert response.status_code == 303
    assert response["Location"] == reverse(
        "records:patient-detail", kwargs={"public_id": cast.patient_b.public_id}
    )
    objection = Objection.objects.get()
    assert (objection.status, objection.patient_id, objection.nhs_number, objection.birth_date) == (
        Status.IDENTITY_VERIFIED,
        cast.patient_b.pk,
        "9990000026",
        date(1962, 7, 1),
    )
    assert (objection.entered_by, objection.entered_for, objection.identity_checked_by) == (
        cast.gp_ben,
        cast.practice_b,
        cast.gp_ben,
    )
    assert objection.channel == Objection.Channel.IN_PERSON
    recorded = AccessEvent.objects.exclude(pk=opened.pk).get()
    assert (recorded.action, recorded.purpose, recorded.outcome, recorded.patient_id, recorded.user_id) == (
        MATCH,
        PATIENTS_RIGHTS,
        AccessEvent.Outcome.ALLOWED,
        cast.patient_b.pk,
        cast.gp_ben.pk,
    )
    assert "registered-practice" in recorded.basis
    assert {entry.actor for entry in LogEntry.objects.get_for_object(objection)} == {cast.gp_ben}


@pytest.mark.parametrize("who", ["gp_ada", "ed_cara", "privacy_fay"])
def test_another_practice_or_anyone_else_cannot_record_an_objection_from_a_record(client, cast, who):
    url = reverse("records:objection-new-for-patient", kwargs={"public_id": cast.patient_b.public_id})
    client.force_login(getattr(cast, who))

    opened = client.get(url)
    posted = client.post(
        url,
        {
            "channel": "phone",
            "received_on": timezone.localdate().isoformat(),
            "contact_by": "phone",
            "contact_detail": "01945 000002",
            "on_behalf": "self",
            "scope_whole_record": "on",
        },
    )

    for response in (opened, posted):
        assert response.status_code == 404
        for value in CASE_FIELDS:
            assert value not in response.content.decode()
    assert not Objection.objects.exists()
    events = list(AccessEvent.objects.order_by("pk"))
    assert [(event.action, event.outcome, event.patient_id, event.purpose) for event in events] == [
        (AccessEvent.Action.VIEW_RECORD, AccessEvent.Outcome.DENIED, cast.patient_b.pk, PATIENTS_RIGHTS),
        (MATCH, AccessEvent.Outcome.DENIED, cast.patient_b.pk, PATIENTS_RIGHTS),
    ]


def test_recording_from_a_record_that_does_not_exist_is_a_404_and_audited(client, cast):
    client.force_login(cast.gp_ben)
    url = reverse(
        "records:objection-new-for-patient", kwargs={"public_id": "00000000-0000-0000-0000-000000000001"}
    )

    assert client.get(url).status_code == 404
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id) == (AccessEvent.Outcome.NOT_FOUND, None)


def test_every_objection_page_sends_a_stranger_to_log_in_and_writes_nothing(client, cast):
    objection = receive()
    urls = [reverse("records:objection-list"), reverse("records:objection-new")]
    urls += [
        reverse("records:objection-new-for-patient", kwargs={"public_id": cast.patient_b.public_id}),
        case_url(objection),
        case_url(objection, "objection-letter"),
    ]
    urls += [case_url(objection, name) for name in STEP_POSTS]
    before = snapshot(objection)

    for url in urls:
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (method, url)
            assert response["Location"].startswith(reverse("login"))
    assert snapshot(objection) == before
    assert not AccessEvent.objects.exists()


# Exact query counts. Every page's frame reads 1. the session, 2. the user, and for the IG team, who must pass a
# second factor, 3. the session's device; the door asks 4. the permission; the frame adds the role profiles (with
# their roles, in the same query), the break-glass grants and, for a privacy officer, the Objections link's
# permission (three queries).
FRAME = 3
# 5. the cases, in one query however many.
LIST_QUERIES = 5 + FRAME
# 5. the case with who entered it and took each step; 6. the matched patient's NHS number; 7. the partners' names;
# 8. the change log with its actors; 9. the patient and 10-12. the users (verified, decided, told) that the change
# log's foreign keys name; 13. the partners for the decision form's ticked boxes.
TOLD_CASE_QUERIES = 13 + FRAME


@pytest.mark.parametrize("cases", [1, 10])
def test_the_list_takes_the_same_exact_queries_for_few_cases_and_many(
    client, cast, ig, cases, django_assert_num_queries
):
    for number in range(cases):
        at(
            Status.NOT_UPHELD if number % 2 else Status.RECEIVED,
            cast,
            ig,
            contact_detail=f"p{number}@example.org",
        )
    client.force_login(ig)

    with django_assert_num_queries(LIST_QUERIES):
        response = client.get(reverse("records:objection-list"))

    assert response.content.decode().count('class="card card-body mb-3 objection-case') == cases


def test_a_told_cases_page_takes_an_exact_number_of_queries(client, cast, ig, django_assert_num_queries):
    objection = at(Status.UPHELD, cast, ig)
    objection_inform(objection_id=objection.pk, by=ig)
    client.force_login(ig)

    with django_assert_num_queries(TOLD_CASE_QUERIES):
        response = client.get(case_url(objection))

    assert "Told by privacy.fay" in response.content.decode()


def test_a_restricted_patients_address_stays_out_of_a_case_the_practice_enters(client, cast):
    cast.patient_b.address = "2 Fen Lane, Wisbech"
    cast.patient_b.postcode = "PE13 1AA"
    cast.patient_b.is_restricted = True
    cast.patient_b.save()
    client.force_login(cast.gp_ben)

    response = client.post(
        reverse("records:objection-new-for-patient", kwargs={"public_id": cast.patient_b.public_id}),
        {
            "channel": "letter",
            "received_on": timezone.localdate().isoformat(),
            "contact_by": "phone",
            "contact_detail": "01945 000002",
            "on_behalf": "self",
            "scope_whole_record": "on",
        },
    )

    assert response.status_code == 303
    objection = Objection.objects.get()
    assert (objection.address, objection.postcode, objection.patient_id) == ("", "", cast.patient_b.pk)
