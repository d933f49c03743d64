"""Patients' upheld objections, and the national data opt-out where the deployment counts it, on every read.

What an objection withholds is withheld from the rules' answer, from the list of visible patients and from the
record page alike; the page says that something is withheld, never what, and the audit row says which objections,
sections and partners. A user who would otherwise see the record is told when the whole of it is withheld; anyone
else gets the refusal they would get without the objection. A break-glass for safeguarding sets aside, for its
time, only an objection whose decision allows it, and each such access is its own event with an alert for the grant.
"""

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from audit.models import AccessEvent, Alert
from consent.models import BreakGlassGrant, NationalOptOut, Objection, SelfClaimedRelationship
from consent.policy import NATIONAL_OPT_OUT, Action, decide, visible_patients
from records.access import (
    PatientNotFound,
    RecordWithheld,
    RelationshipNeeded,
    break_glass_for_user,
    get_patient_for_user,
    patient_search_for_user,
    relationship_declare_for_user,
)
from records.portal.selectors import OBJECTION_WITHHELD, record_page_build
from records.sections import Section

SAFEGUARDING = BreakGlassGrant.Reason.SAFEGUARDING
EMERGENCY = BreakGlassGrant.Reason.EMERGENCY


def objection_upheld(patient, reference: str, status: str = Objection.Status.UPHELD, **scope) -> Objection:
    return Objection.objects.create(
        reference=reference,
        channel=Objection.Channel.LETTER,
        given_name=patient.given_name if patient is not None else "Nobody",
        family_name=patient.family_name if patient is not None else "Known",
        birth_date=timezone.localdate() - timedelta(days=20000),
        contact_by=Objection.ContactBy.POST,
        contact_detail="1 Mill Road, Cambridge",
        due_at=timezone.now() + timedelta(days=30),
        patient=patient,
        status=status,
        **scope,
    )


def record_open(user, patient):
    return get_patient_for_user(
        user=user,
        public_id=patient.public_id,
        request=None,
        build=lambda patient, decision: record_page_build(patient, decision, requested_pages=QueryDict()),
    )


def summaries(page) -> set[str]:
    return {entry.summary for section in page.sections for entry in section.entries}


def break_glass(user, patient, reason: str = SAFEGUARDING) -> str:
    return break_glass_for_user(
        user=user,
        public_id=patient.public_id,
        reason_code=reason,
        reason_text="Concern raised by the school nurse",
        request=None,
    ).reference


# What objections withhold, and from whom.


def test_several_objections_combine_and_only_enforced_ones_count(cast):
    objection_upheld(
        cast.patient_a, "OB-PLANS", upheld_sections=[Section.PLANS], upheld_from_partners=["RGT"]
    )
    objection_upheld(
        cast.patient_a,
        "OB-COUNCIL",
        Objection.Status.PARTLY_UPHELD,
        upheld_sections=[Section.MEDICATIONS],
        upheld_from_partners=["CCC01"],
    )
    for reference, status in [
        ("OB-WITHDRAWN", Objection.Status.WITHDRAWN),
        ("OB-REFUSED", Objection.Status.NOT_UPHELD),
        ("OB-OPEN", Objection.Status.UNDER_REVIEW),
        ("OB-NEW", Objection.Status.RECEIVED),
    ]:
        objection_upheld(cast.patient_a, reference, status, upheld_whole_record=True)

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert decision.allowed
    assert decision.withheld_sections == {Section.PLANS, Section.MEDICATIONS}
    assert decision.withheld_partners == {"RGT", "CCC01"}
    assert decision.objections_applied == ("OB-COUNCIL", "OB-PLANS")
    assert cast.patient_a in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    page = record_open(cast.gp_ada, cast.patient_a).content
    assert summaries(page) == {"Type 2 diabetes mellitus"}
    assert OBJECTION_WITHHELD in page.withheld
    notice = " ".join(page.withheld)
    for named in (
        "Care and support plans",
        "Medications",
        "Cambridge University Hospitals",
        "RGT",
        "Council",
    ):
        assert named not in notice
    event = AccessEvent.objects.get()
    assert event.withheld.split("; ") == [
        "objection:OB-COUNCIL,OB-PLANS",
        "objection-sections:care-and-support-plans,medications-and-medical-devices",
        "objection-partners:CCC01,RGT",
    ]
    assert event.partners_shown == ["D81001"]
    assert not {Section.PLANS.value, Section.MEDICATIONS.value} & set(event.sections_shown)


def test_a_partners_own_staff_still_see_what_it_sent_when_the_patient_objects_to_sharing_it(cast):
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_from_partners=["RGT"])

    own = decide(cast.ed_cara, cast.patient_a, Action.VIEW_RECORD)
    other = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert (own.withheld_partners, own.objections_applied) == (frozenset(), ())
    assert other.withheld_partners == {"RGT"}
    assert "Emergency department attendance" in summaries(record_open(cast.ed_cara, cast.patient_a).content)
    assert OBJECTION_WITHHELD not in record_open(cast.ed_cara, cast.patient_a).content.withheld
    assert "Emergency department attendance" not in summaries(
        record_open(cast.gp_ada, cast.patient_a).content
    )


def test_a_section_objection_says_nothing_to_a_role_that_does_not_open_the_section(cast):
    objection_upheld(cast.patient_a, "OB-MEDS", upheld_sections=[Section.MEDICATIONS])

    decision = decide(cast.social_eli, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.withheld_sections, decision.objections_applied) == (frozenset(), ())
    assert OBJECTION_WITHHELD not in record_open(cast.social_eli, cast.patient_a).content.withheld


def test_a_partner_objection_says_nothing_to_a_role_that_reads_no_entries(cast):
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_from_partners=["RGT"])

    decision = decide(cast.reception_dan, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.withheld_partners, decision.objections_applied) == (frozenset(), ())
    page = record_open(cast.reception_dan, cast.patient_a).content
    assert OBJECTION_WITHHELD not in page.withheld
    assert "objection" not in AccessEvent.objects.get().withheld


# The whole record withheld: who is told, and who is not.


@pytest.mark.parametrize(
    ("scope", "why"),
    [
        ({"upheld_whole_record": True}, "objection OB-ALL upheld for the whole record"),
        ({"upheld_to_partners": ["D81001", "RT1"]}, "objection OB-ALL upheld against D81001"),
    ],
)
def test_a_user_who_would_see_the_record_is_told_the_patient_withheld_it(cast, scope, why):
    objection_upheld(cast.patient_a, "OB-ALL", **scope)

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.withholds_whole_record, decision.sections) == (
        False,
        True,
        frozenset(),
    )
    assert why in decision.why_not
    assert cast.patient_a not in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    assert cast.patient_a not in visible_patients(cast.gp_ada, Action.SEARCH)
    with pytest.raises(RecordWithheld) as raised:
        record_open(cast.gp_ada, cast.patient_a)
    assert raised.value.public_id == cast.patient_a.public_id
    assert raised.value.break_glass_max_hours == 4
    assert set(vars(raised.value)) == {"public_id", "break_glass_max_hours"}
    event = AccessEvent.objects.get()
    assert (event.outcome, event.patient_id, event.sections_shown) == ("denied", cast.patient_a.pk, [])
    assert why in event.reason
    with pytest.raises(RecordWithheld):
        patient_search_for_user(user=cast.gp_ada, nhs_number_text=cast.patient_a.nhs_number, request=None)
    assert AccessEvent.objects.filter(action="search", outcome="denied").count() == 1


def test_a_role_that_may_not_break_the_glass_is_told_too_and_offered_nothing(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)

    with pytest.raises(RecordWithheld) as raised:
        record_open(cast.reception_dan, cast.patient_a)

    assert raised.value.break_glass_max_hours == 0


def test_an_objection_against_other_partners_leaves_this_users_view_whole(cast):
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_to_partners=["RGT"])

    assert decide(cast.ed_cara, cast.patient_a, Action.VIEW_RECORD).withholds_whole_record
    ada = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)
    assert (ada.allowed, ada.withheld_sections, ada.withheld_partners) == (True, frozenset(), frozenset())
    assert OBJECTION_WITHHELD not in record_open(cast.gp_ada, cast.patient_a).content.withheld


def test_a_user_without_a_relationship_gets_the_refusal_they_would_get_without_the_objection(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)

    decision = decide(cast.gp_ben, cast.patient_a, Action.SEARCH)

    assert (decision.withholds_whole_record, decision.why_not) == (False, "no legitimate relationship")
    with pytest.raises(RelationshipNeeded) as raised:
        patient_search_for_user(user=cast.gp_ben, nhs_number_text=cast.patient_a.nhs_number, request=None)
    assert not isinstance(raised.value, RecordWithheld)
    assert "objection" not in AccessEvent.objects.get().reason


def test_a_self_claimed_relationship_is_told_the_record_is_withheld(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)
    relationship_declare_for_user(
        user=cast.gp_ben,
        public_id=cast.patient_a.public_id,
        reason_code=SelfClaimedRelationship.Reason.UNPLANNED_CARE,
        reason_text="Temporary resident",
        hours=2,
        request=None,
    )

    with pytest.raises(RecordWithheld):
        record_open(cast.gp_ben, cast.patient_a)


def test_an_upheld_objection_matched_to_no_patient_hides_no_one(cast):
    objection_upheld(None, "OB-NOBODY", upheld_whole_record=True)

    assert set(visible_patients(cast.gp_ada)) == {cast.patient_a, cast.patient_sensitive}
    assert decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed


def test_an_objection_withdrawn_after_it_was_upheld_takes_effect_at_once(cast):
    objection = objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)
    assert not decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed

    Objection.objects.filter(pk=objection.pk).update(status=Objection.Status.WITHDRAWN)

    assert decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).allowed
    assert cast.patient_a in visible_patients(cast.gp_ada)


# A break-glass for safeguarding, where the objection's decision allows it.


def test_a_safeguarding_break_glass_sets_aside_an_objection_that_allows_it_loudly(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True, break_glass_may_override=True)
    reference = break_glass(cast.gp_ben, cast.patient_a)

    decision = decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD)
    access = record_open(cast.gp_ben, cast.patient_a)
    record_open(cast.gp_ben, cast.patient_a)

    assert (decision.allowed, decision.objection_overridden, decision.overridden_objections) == (
        True,
        True,
        ("OB-ALL",),
    )
    assert (decision.grant_reference, decision.basis_kind) == (reference, "break-glass")
    assert cast.patient_a in visible_patients(cast.gp_ben, Action.VIEW_RECORD)
    assert "Type 2 diabetes mellitus" in summaries(access.content)
    assert OBJECTION_WITHHELD not in access.content.withheld
    events = list(AccessEvent.objects.order_by("id"))
    assert [(event.action, event.outcome) for event in events] == [
        ("break-glass", "allowed"),
        ("view-record", "allowed"),
        ("objection-override", "allowed"),
        ("view-record", "allowed"),
        ("objection-override", "allowed"),
    ]
    override = events[2]
    assert override.pk == access.event.pk + 1
    assert (override.patient_id, override.basis, override.sections_shown) == (
        cast.patient_a.pk,
        decision.basis,
        access.event.sections_shown,
    )
    assert "OB-ALL" in override.reason and reference in override.reason
    # One alert for the grant's override, however often the record is opened under it; it names the grant.
    alert = Alert.objects.get(kind=Alert.Kind.OBJECTION_OVERRIDE)
    assert (alert.reference, alert.event_id, alert.user_id) == (reference, override.pk, cast.gp_ben.pk)
    for patient_fact in ("Ashby", "Alice", "9990000018", "999 000 0018", "Mill Road"):
        assert patient_fact not in alert.reason
    assert Alert.objects.filter(kind=Alert.Kind.BREAK_GLASS, reference=reference).count() == 1


def test_a_search_under_the_override_finds_the_patient_and_sets_nothing_aside(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True, break_glass_may_override=True)
    break_glass(cast.gp_ben, cast.patient_a)

    found = patient_search_for_user(user=cast.gp_ben, nhs_number_text=cast.patient_a.nhs_number, request=None)

    assert found == cast.patient_a
    assert not AccessEvent.objects.filter(action="objection-override").exists()
    assert not Alert.objects.filter(kind=Alert.Kind.OBJECTION_OVERRIDE).exists()


def test_the_override_rests_on_the_break_glass_even_where_a_relationship_holds(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True, break_glass_may_override=True)
    reference = break_glass(cast.gp_ada, cast.patient_a)

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.basis_kind, decision.grant_reference) == (
        True,
        "break-glass",
        reference,
    )
    assert decision.basis == f"break-glass:D81001 {reference}"
    assert decision.relationship_id is None


def test_a_break_glass_for_another_reason_leaves_the_objection_in_force(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True, break_glass_may_override=True)
    break_glass(cast.gp_ben, cast.patient_a, EMERGENCY)

    decision = decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.withholds_whole_record, decision.objection_overridden) == (
        False,
        True,
        False,
    )
    assert cast.patient_a not in visible_patients(cast.gp_ben, Action.VIEW_RECORD)
    with pytest.raises(RecordWithheld):
        record_open(cast.gp_ben, cast.patient_a)
    assert not Alert.objects.filter(kind=Alert.Kind.OBJECTION_OVERRIDE).exists()


def test_an_objection_that_does_not_allow_override_stays_in_force_under_safeguarding(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)
    break_glass(cast.gp_ben, cast.patient_a)

    assert decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD).withholds_whole_record
    assert cast.patient_a not in visible_patients(cast.gp_ben, Action.VIEW_RECORD)
    with pytest.raises(RecordWithheld):
        record_open(cast.gp_ben, cast.patient_a)
    assert not AccessEvent.objects.filter(action="objection-override").exists()
    assert not Alert.objects.filter(kind=Alert.Kind.OBJECTION_OVERRIDE).exists()


def test_the_override_sets_aside_only_the_objections_that_allow_it(cast):
    objection_upheld(
        cast.patient_a, "OB-PLANS", upheld_sections=[Section.PLANS], break_glass_may_override=True
    )
    objection_upheld(cast.patient_a, "OB-COUNCIL", upheld_from_partners=["CCC01"])
    break_glass(cast.gp_ben, cast.patient_a)

    decision = decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD)
    page = record_open(cast.gp_ben, cast.patient_a).content

    assert decision.overridden_objections == ("OB-PLANS",)
    assert (decision.withheld_sections, decision.withheld_partners) == (frozenset(), {"CCC01"})
    assert decision.objections_applied == ("OB-COUNCIL",)
    assert "Community mental health care plan" in summaries(page)
    assert "Care Act needs assessment" not in summaries(page)
    assert OBJECTION_WITHHELD in page.withheld


def test_an_overridable_objection_that_withholds_nothing_from_this_user_is_not_an_override(cast):
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_to_partners=["RGT"], break_glass_may_override=True)
    break_glass(cast.gp_ben, cast.patient_a)

    decision = decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD)
    record_open(cast.gp_ben, cast.patient_a)

    assert (decision.allowed, decision.objection_overridden) == (True, False)
    assert not AccessEvent.objects.filter(action="objection-override").exists()


@pytest.mark.parametrize("closed_by", ["expiry", "ended early"])
def test_the_override_ends_with_its_grant(cast, closed_by):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True, break_glass_may_override=True)
    break_glass(cast.gp_ada, cast.patient_a)
    assert decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD).objection_overridden

    if closed_by == "expiry":
        BreakGlassGrant.objects.update(valid_until=timezone.now() - timedelta(seconds=1))
    else:
        BreakGlassGrant.objects.update(ended_at=timezone.now())

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)
    assert (decision.allowed, decision.withholds_whole_record, decision.objection_overridden) == (
        False,
        True,
        False,
    )
    assert cast.patient_a not in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    with pytest.raises(RecordWithheld):
        record_open(cast.gp_ada, cast.patient_a)


# The national data opt-out.


def test_the_national_opt_out_does_not_touch_direct_care_by_default(cast, settings):
    settings.NDOP_HIDES_DIRECT_CARE = False
    NationalOptOut.objects.create(patient=cast.patient_a, source=NationalOptOut.Source.STAFF)

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.objections_applied) == (True, ())
    assert cast.patient_a in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    page = record_open(cast.gp_ada, cast.patient_a).content
    assert "Type 2 diabetes mellitus" in summaries(page)
    assert OBJECTION_WITHHELD not in page.withheld


def test_a_deployment_may_have_the_opt_out_withhold_the_record_like_a_whole_record_objection(cast, settings):
    settings.NDOP_HIDES_DIRECT_CARE = True
    NationalOptOut.objects.create(patient=cast.patient_a, source=NationalOptOut.Source.STAFF)
    objection_upheld(cast.patient_a, "OB-PLANS", upheld_sections=[Section.PLANS])

    decision = decide(cast.gp_ada, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.withholds_whole_record) == (False, True)
    assert decision.objections_applied == (NATIONAL_OPT_OUT,)
    assert "national data opt-out" in decision.why_not
    assert cast.patient_a not in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    assert cast.patient_sensitive in visible_patients(cast.gp_ada, Action.VIEW_RECORD)
    with pytest.raises(RecordWithheld):
        record_open(cast.gp_ada, cast.patient_a)
    assert "national data opt-out" in AccessEvent.objects.get().reason
    # A user with no relationship is refused as ever, and not told.
    assert decide(cast.gp_ben, cast.patient_a, Action.SEARCH).why_not == "no legitimate relationship"


def test_no_break_glass_sets_the_opt_out_aside(cast, settings):
    settings.NDOP_HIDES_DIRECT_CARE = True
    NationalOptOut.objects.create(patient=cast.patient_a, source=NationalOptOut.Source.STAFF)
    break_glass(cast.gp_ben, cast.patient_a)

    decision = decide(cast.gp_ben, cast.patient_a, Action.VIEW_RECORD)

    assert (decision.allowed, decision.withholds_whole_record, decision.objection_overridden) == (
        False,
        True,
        False,
    )
    assert cast.patient_a not in visible_patients(cast.gp_ben, Action.VIEW_RECORD)


# The same answer from the object rule and the list rule, for every user and patient of the cast.


@pytest.mark.parametrize("opt_out_counts", [False, True])
@pytest.mark.parametrize("action", [Action.SEARCH, Action.VIEW_RECORD])
def test_visible_patients_agrees_with_decide_for_every_user_and_patient_of_the_cast(
    cast, settings, action, opt_out_counts
):
    settings.NDOP_HIDES_DIRECT_CARE = opt_out_counts
    objection_upheld(cast.patient_a, "OB-HOSPITAL", upheld_to_partners=["RGT"], break_glass_may_override=True)
    objection_upheld(cast.patient_a, "OB-PLANS", upheld_sections=[Section.PLANS])
    objection_upheld(cast.patient_b, "OB-ALL", upheld_whole_record=True)
    NationalOptOut.objects.create(patient=cast.patient_sensitive, source=NationalOptOut.Source.FEED)
    break_glass(cast.ed_cara, cast.patient_b)
    break_glass(cast.gp_ada, cast.patient_b, EMERGENCY)
    users = [cast.gp_ada, cast.gp_ben, cast.ed_cara, cast.reception_dan, cast.social_eli, cast.privacy_fay]
    patients = [cast.patient_a, cast.patient_b, cast.patient_sensitive]

    for user in users:
        visible = set(visible_patients(user, action))
        for patient in patients:
            decision = decide(user, patient, action)
            assert (patient in visible) is decision.allowed, (user.username, patient.family_name)


def test_a_denied_read_shows_nothing_of_the_patient_and_changes_nothing(cast):
    objection_upheld(cast.patient_a, "OB-ALL", upheld_whole_record=True)
    before = (Objection.objects.get().status, BreakGlassGrant.objects.count())

    with pytest.raises(PatientNotFound):
        record_open(cast.gp_ada, cast.patient_a)

    assert (Objection.objects.get().status, BreakGlassGrant.objects.count()) == before
    assert AccessEvent.objects.get().outcome == "denied"
