"""Receiving a patient's objection: its reference, its legal deadline, and the same submission never stored twice."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from consent.models import Objection
from consent.objections import RESUBMIT_WINDOW, calendar_month_after, objection_receive

SUBMISSION = {
    "channel": Objection.Channel.WEB_FORM,
    "given_name": "Brian",
    "family_name": "Barton",
    "birth_date": date(1962, 7, 1),
    "nhs_number": "9990000026",
    "contact_by": Objection.ContactBy.EMAIL,
    "contact_detail": "brian@example.org",
    "scope_from_partners": ["RT1"],
}


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC)),
        (datetime(2028, 1, 31, 9, tzinfo=UTC), datetime(2028, 2, 29, 9, tzinfo=UTC)),
        (datetime(2026, 3, 15, 9, tzinfo=UTC), datetime(2026, 4, 15, 9, tzinfo=UTC)),
        (datetime(2026, 12, 31, 9, tzinfo=UTC), datetime(2027, 1, 31, 9, tzinfo=UTC)),
    ],
)
def test_a_case_is_due_one_calendar_month_after_receipt(received, due):
    assert calendar_month_after(received) == due


def test_an_objection_is_received_with_a_reference_that_names_no_one_and_its_due_date(db):
    received = datetime(2026, 1, 31, 9, tzinfo=UTC)

    objection, created = objection_receive(**SUBMISSION, received_at=received)

    assert created
    assert re.fullmatch(r"OB-[A-HJKMNP-Z2-9]{8}", objection.reference)
    assert objection.status == Objection.Status.RECEIVED and objection.patient is None
    assert objection.due_at == datetime(2026, 2, 28, 9, tzinfo=UTC)


def test_the_same_submission_sent_again_soon_is_the_same_case(db):
    first, _ = objection_receive(**SUBMISSION)
    again, created = objection_receive(**{**SUBMISSION, "family_name": "  BARTON "})

    assert (again.pk, created) == (first.pk, False)
    assert Objection.objects.count() == 1


def test_the_same_submission_after_the_window_or_a_different_one_is_a_new_case(db):
    first, _ = objection_receive(
        **SUBMISSION, received_at=datetime(2026, 1, 1, 9, tzinfo=UTC) - RESUBMIT_WINDOW
    )
    later, created_later = objection_receive(**SUBMISSION, received_at=datetime(2026, 1, 1, 9, 1, tzinfo=UTC))
    other, created_other = objection_receive(**{**SUBMISSION, "scope_to_partners": ["RGT"]})

    assert created_later and created_other
    assert len({first.pk, later.pk, other.pk}) == 3


def test_the_reference_is_unique_across_many_cases(db):
    references = {
        objection_receive(**{**SUBMISSION, "contact_detail": f"p{n}@example.org"})[0].reference
        for n in range(50)
    }
    assert len(references) == 50
    assert timedelta(minutes=1) < RESUBMIT_WINDOW


def test_demographics_or_the_gp_practice_are_not_objected_to_by_section(db):
    # Only a whole-record objection withholds what identifies the patient; as a section it would enforce nothing.
    with pytest.raises(ValueError, match="Only clinical sections"):
        objection_receive(**{**SUBMISSION, "scope_sections": ["person-demographics", "problems-and-issues"]})

    assert not Objection.objects.exists()
