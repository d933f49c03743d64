"""HL7 v2 REF referrals: a referral a partner's system sends gives the referred-to partner (or its team) a
relationship while the referral stands, and none once it is cancelled or rejected."""

import pytest

from consent.models import LegitimateRelationship
from consent.services import care_team_create
from records.ingest.pipeline import ingest_texts
from records.models import Feed, IngestRun, QuarantinedRecord, RecordEntry

Basis = LegitimateRelationship.Basis


@pytest.fixture
def referral_feed(cast) -> Feed:
    """The practice's referral system, sending HL7 v2 REF messages."""
    return Feed.objects.create(
        code="gp-referrals", organisation=cast.practice_b, name="e-Referrals", format=Feed.Format.HL7V2
    )


def message(
    event: str,
    control_id: str,
    *,
    status: str = "P",
    referred_to: str = "RT1^ODS",
    sent: str = "20240601090000",
) -> str:
    segments = [
        f"MSH|^~\\&|EMIS|D81002|SHCR|QUE|{sent}||REF^{event}^REF_I12|{control_id}|P|2.5",
        f"RF1|{status}^Pending|R^Routine|MH^Mental health^LOCAL|||R-77|20240601|||^Low mood and anxiety",
        "PRD|RP^Referring provider|OKAFOR^BEN^^^DR|||||G8123456^GMC",
        f"PRD|RT^Referred to provider|Community mental health team|||||{referred_to}",
        "PID|1||9990000026^^^NHS^NH||BARTON^BRIAN||19620701|M",
    ]
    return "\r".join(segments) + "\r"


def send(feed: Feed, *messages: str) -> IngestRun:
    return ingest_texts(feed, [("referrals.hl7", "".join(messages).encode())])


def test_a_ref_i12_referral_to_cpft_gives_cpft_a_referral_relationship(cast, referral_feed):
    run = send(referral_feed, message("I12", "M1"))

    entry = RecordEntry.objects.get(resource_type="ServiceRequest")
    assert (entry.patient, entry.status, entry.summary) == (
        cast.patient_b,
        "active",
        "Mental health Low mood and anxiety",
    )
    relationship = LegitimateRelationship.objects.get(content_object=cast.patient_b, group=cast.cpft.group)
    assert (relationship.basis, relationship.valid_until) == (Basis.REFERRAL, None)
    assert (relationship.source_feed, relationship.source_run, relationship.source_entry) == (
        referral_feed,
        run,
        entry,
    )


@pytest.mark.parametrize(("event", "status"), [("I14", "P"), ("I13", "R")])
def test_a_cancelled_or_rejected_referral_ends_the_relationship(cast, referral_feed, event, status):
    send(referral_feed, message("I12", "M1"))

    send(referral_feed, message(event, "M2", status=status, sent="20240602090000"))

    assert RecordEntry.objects.get(resource_type="ServiceRequest").status == "revoked"
    assert not LegitimateRelationship.objects.filter(
        content_object=cast.patient_b, group=cast.cpft.group
    ).exists()


def test_a_ref_naming_a_team_goes_to_the_team(cast, referral_feed):
    team = care_team_create(organisation=cast.cpft, name="Community mental health team", code="CMHT-N")

    send(referral_feed, message("I12", "M1", referred_to="RT1^ODS~CMHT-N^TEAM"))

    assert LegitimateRelationship.objects.get(content_object=cast.patient_b, group=team.group).basis == (
        Basis.REFERRAL
    )
    assert not LegitimateRelationship.objects.filter(
        content_object=cast.patient_b, group=cast.cpft.group
    ).exists()


def test_a_ref_without_rf1_is_quarantined_saying_so(cast, referral_feed):
    text = message("I12", "M1").replace("RF1|", "ZRF|")

    run = send(referral_feed, text)

    rejected = QuarantinedRecord.objects.get(ingest_run=run)
    assert (rejected.reason, rejected.resource_type) == (QuarantinedRecord.Reason.INVALID_RESOURCE, "REF^I12")
    assert "needs an RF1 segment" in rejected.detail
    assert not RecordEntry.objects.filter(resource_type="ServiceRequest").exists()
