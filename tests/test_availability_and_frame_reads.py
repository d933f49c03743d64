"""The two reads every record page makes that are the same for every patient, asked as fixed SQL: every partner's
live datasets (`records.portal.availability.data_availability_get`) and the user's break-glass grants in force for
the page's banner (`consent.grants.break_glass_current`). Each is held here to what the models say."""

from datetime import timedelta

from django.utils import timezone

from consent.grants import break_glass_create, break_glass_current
from consent.models import BreakGlassGrant
from consent.policy import staff_profiles_of
from records.models import Feed, Organisation
from records.portal.availability import data_availability_get
from records.sections import Section
from records.services import feed_upsert, organisation_upsert


def test_every_active_partner_is_listed_by_name_with_its_live_feeds_flagged_stale_as_the_feed_itself_says(
    cast,
):
    now = timezone.now()
    schedule = cast.cuh_feed.schedule_minutes
    # Fresh, just late, never arrived: each flag as `Feed.is_stale` gives it.
    Feed.objects.filter(pk=cast.cuh_feed.pk).update(last_success_at=now - timedelta(minutes=schedule))
    Feed.objects.filter(pk=cast.gp_a_feed.pk).update(
        last_success_at=now - timedelta(minutes=2 * schedule + 1)
    )
    Feed.objects.filter(pk=cast.gp_b_feed.pk).update(last_success_at=None)
    second = feed_upsert(
        code="cuh-second", organisation=cast.cuh, name="A second dataset", sections=[Section.ENCOUNTERS]
    )
    feed_upsert(code="cuh-paused", organisation=cast.cuh, name="Paused", sections=[], state=Feed.State.PAUSED)
    organisation_upsert(
        ods_code="OLD01", name="Aaa closed partner", kind=Organisation.Kind.GP_PRACTICE, is_active=False
    )

    availability = data_availability_get(now)

    expected = [organisation for organisation in Organisation.objects.filter(is_active=True).order_by("name")]
    shown = [partner.organisation.ods_code for partner in availability.live] + [
        partner.ods_code for partner in availability.not_joined
    ]
    assert sorted(shown) == sorted(organisation.ods_code for organisation in expected)
    assert [partner.organisation.name for partner in availability.live] == [
        organisation.name
        for organisation in expected
        if organisation.feeds.filter(state=Feed.State.LIVE).exists()
    ]
    for partner in availability.live:
        organisation = Organisation.objects.get(pk=partner.organisation.pk)
        assert (partner.organisation.name, partner.organisation.ods_code) == (
            organisation.name,
            organisation.ods_code,
        )
        feeds = list(organisation.feeds.filter(state=Feed.State.LIVE).order_by("name"))
        assert [(feed.name, feed.partner, feed.last_success_at, feed.is_stale) for feed in partner.feeds] == [
            (feed.name, organisation.name, feed.last_success_at, feed.is_stale(now)) for feed in feeds
        ]
    flags = {feed.name: feed.is_stale for partner in availability.live for feed in partner.feeds}
    assert flags[cast.cuh_feed.name] is False and flags[second.name] is True
    cuh = next(partner for partner in availability.live if partner.organisation.pk == cast.cuh.pk)
    assert [feed.name for feed in cuh.feeds] == sorted([cast.cuh_feed.name, second.name])
    assert [partner.ods_code for partner in availability.not_joined] == ["QUE"]


def test_the_banner_reads_only_the_users_own_grants_in_force_soonest_to_end_first(cast):
    now = timezone.now()
    profile = staff_profiles_of(cast.ed_cara)[0]

    def grant(hours: int, **changes: object) -> BreakGlassGrant:
        made = break_glass_create(
            profile=profile,
            patient=cast.patient_sensitive,
            reason_code=BreakGlassGrant.Reason.EMERGENCY,
            reason_text="Unconscious in resus",
            hours=hours,
            max_hours=24,
            now=now - timedelta(minutes=1),
        )
        if changes:
            BreakGlassGrant.objects.filter(pk=made.pk).update(**changes)
        return made

    later = grant(8)
    sooner = grant(2)
    grant(2, ended_at=now - timedelta(seconds=1))
    grant(2, valid_until=now - timedelta(seconds=1))
    grant(2, valid_from=now + timedelta(minutes=5))

    current = break_glass_current(cast.ed_cara.pk, now)

    assert [(held.reference, held.valid_until) for held in current] == [
        (sooner.reference, sooner.valid_until),
        (later.reference, later.valid_until),
    ]
    assert break_glass_current(cast.gp_ada.pk, now) == []
