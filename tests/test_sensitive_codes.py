"""The sensitive code lists: the curated default, SNOMED CT descendants through the hierarchy, ICD-10 prefixes, Read
codes, the hierarchy's load command, and the back office re-flagging stored entries when a code is added or removed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from consent import sensitive_admin
from consent.models import ConceptIsA, SensitiveCode
from consent.sensitive import (
    CTV3,
    CURATED_SOURCE,
    ICD_10,
    ICD_10_UK,
    READ_V2,
    SENSITIVE_SETS,
    SNOMED_CT,
    default_codes,
    default_is_a,
    default_sensitive_codes,
    sensitive_codes_load,
    sensitive_codes_refresh,
    sensitive_defaults_seed,
    sensitive_flags_refresh,
)
from consent.tasks import sensitive_flags_refresh_task
from records.models import RecordEntry
from tests.builders import coded_condition, ingest

STI = SensitiveCode.Set.SEXUALLY_TRANSMITTED_INFECTION
ROOT, CHILD, GRANDCHILD, UNRELATED = (
    "900000000000001",
    "900000000000002",
    "900000000000003",
    "900000000000004",
)
RF2_HEADER = "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\t"
RF2_HEADER += "characteristicTypeId\tmodifierId"
IS_A = "116680003"
FINDING_SITE = "363698007"


def relationship(number: int, child: str, parent: str, *, active: str = "1", type_id: str = IS_A) -> str:
    module, group, inferred, existential = (
        "900000000000207008",
        "0",
        "900000000000011006",
        "900000000000451002",
    )
    fields = [str(number), "20250101", active, module, child, parent, group, type_id, inferred, existential]
    return "\t".join(fields)


def rf2_file(
    directory: Path, lines: list[str], name: str = "sct2_Relationship_Snapshot_INT_20250101.txt"
) -> Path:
    path = directory / name
    path.write_text("\r\n".join([RF2_HEADER, *lines]) + "\r\n", encoding="utf-8")
    return path


def test_the_curated_default_is_in_the_database_after_migrate(db):
    stored = set(SensitiveCode.objects.filter(is_default=True).values_list("system", "code"))
    edges = set(ConceptIsA.objects.filter(source=CURATED_SOURCE).values_list("child", "parent"))

    assert stored == {(code.system, code.code) for code in default_codes()}
    assert edges == set(default_is_a())


def test_the_curated_default_covers_each_set_and_its_common_concepts():
    sets = {choice.value for choice in SensitiveCode.Set}
    by_set = {
        name: {(code.system, code.code) for code in default_codes() if code.sensitive_set == name}
        for name in sets
    }

    assert set(SENSITIVE_SETS) == sets
    assert all(any(system == SNOMED_CT for system, _ in by_set[name]) for name in sets)
    assert all(any(system == ICD_10 for system, _ in by_set[name]) for name in sets)
    assert {"86406008", "165816005", "240589008", "15628003", "76272004", "33839006"} <= SENSITIVE_SETS[STI]
    assert {"52637005", "63487001"} <= SENSITIVE_SETS[SensitiveCode.Set.ASSISTED_FERTILISATION]
    assert {"93461009", "407374003"} <= SENSITIVE_SETS[SensitiveCode.Set.GENDER_REASSIGNMENT]
    assert {"386639001", "714812005"} <= SENSITIVE_SETS[SensitiveCode.Set.TERMINATION_OF_PREGNANCY]


def test_every_curated_snomed_concept_is_an_id_and_every_curated_edge_reaches_a_listed_concept():
    snomed = {code.code for code in default_codes() if code.system == SNOMED_CT}
    parents = dict(default_is_a())

    def root_of(concept: str) -> str:
        while concept in parents:
            concept = parents[concept]
        return concept

    assert all(
        code.isdigit() and 6 <= len(code) <= 18 for code in snomed | set(parents) | set(parents.values())
    )
    assert all(root_of(child) in snomed for child in parents)
    assert len({(code.system, code.code) for code in default_codes()}) == len(default_codes())


def test_seeding_again_adds_only_what_is_missing_and_keeps_the_back_offices_rows(db):
    chlamydia = SensitiveCode.objects.get(system=SNOMED_CT, code="105629000")
    chlamydia.display = "Chlamydia (as the back office words it)"
    chlamydia.save()
    added = SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT, display="Local")
    SensitiveCode.objects.filter(system=ICD_10, code="A54").delete()
    before = SensitiveCode.objects.count()

    sensitive_defaults_seed()
    sensitive_defaults_seed()

    assert SensitiveCode.objects.count() == before + 1
    assert SensitiveCode.objects.get(system=ICD_10, code="A54").is_default
    assert SensitiveCode.objects.get(pk=chlamydia.pk).display == "Chlamydia (as the back office words it)"
    assert SensitiveCode.objects.filter(pk=added.pk, is_default=False).exists()
    assert ConceptIsA.objects.count() == len(default_is_a())


def test_a_snomed_code_matches_its_children_and_their_children_through_the_hierarchy(db):
    SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT)
    ConceptIsA.objects.create(child=CHILD, parent=ROOT, source="test")
    ConceptIsA.objects.create(child=GRANDCHILD, parent=CHILD, source="test")
    ConceptIsA.objects.create(child=ROOT, parent=UNRELATED, source="test")

    codes = sensitive_codes_load()

    assert [codes.matches(SNOMED_CT, code) for code in (ROOT, CHILD, GRANDCHILD, UNRELATED)] == [
        True,
        True,
        True,
        False,
    ]
    assert not codes.matches("http://example.org/local", CHILD)


def test_a_snomed_code_without_descendants_matches_only_itself(db):
    SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT, include_descendants=False)
    ConceptIsA.objects.create(child=CHILD, parent=ROOT, source="test")

    codes = sensitive_codes_load()

    assert (codes.matches(SNOMED_CT, ROOT), codes.matches(SNOMED_CT, CHILD)) == (True, False)


def test_a_cycle_in_the_hierarchy_ends(db):
    SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT)
    ConceptIsA.objects.create(child=CHILD, parent=ROOT, source="test")
    ConceptIsA.objects.create(child=ROOT, parent=CHILD, source="test")

    assert {ROOT, CHILD} <= sensitive_codes_load().snomed


def test_the_curated_descendants_match_without_a_release(db):
    codes = sensitive_codes_load()

    # Chlamydia trachomatis infection, below Chlamydial infection; Pneumocystosis associated with AIDS, three down
    # from HIV infection.
    assert codes.matches(SNOMED_CT, "240589008")
    assert codes.matches(SNOMED_CT, "420403001")
    assert codes.snomed == default_sensitive_codes().snomed


@pytest.mark.parametrize(
    ("system", "code", "expected"),
    [
        (ICD_10, "B20", True),
        (ICD_10, "B20.1", True),
        (ICD_10, "B201", True),
        (ICD_10_UK, "B20.1", True),
        (ICD_10_UK, " b20.1 ", True),
        (ICD_10, "Z31.2", True),
        (ICD_10, "Z312", True),
        (ICD_10, "Z31.20", True),
        (ICD_10, "Z31.4", False),
        (ICD_10, "Z31", False),
        (ICD_10, "B2", False),
        (ICD_10, "B30.1", False),
        (ICD_10, "A65", False),
        (ICD_10, "O03.9", False),
        (READ_V2, "A788.", True),
        (READ_V2, "A788.00", True),
        (READ_V2, "43C3.11", True),
        (READ_V2, "A788", False),
        (READ_V2, "a788.", False),
        (CTV3, "A788.", False),
        (SNOMED_CT, "195967001", False),
        (SNOMED_CT, "B20", False),
        ("http://example.org/local", "B20", False),
    ],
)
def test_icd_10_codes_match_as_prefixes_and_read_codes_exactly(db, system, code, expected):
    assert sensitive_codes_load().matches(system, code) is expected


def test_a_ctv3_code_the_back_office_adds_matches_exactly(db):
    SensitiveCode.objects.create(sensitive_set=STI, system=CTV3, code="XaYZ1")

    codes = sensitive_codes_load()

    assert (codes.matches(CTV3, "XaYZ1"), codes.matches(CTV3, "XaYZ"), codes.matches(READ_V2, "XaYZ1")) == (
        True,
        False,
        False,
    )


@pytest.mark.parametrize(
    "code_holder",
    [
        {"code": {"coding": [{"system": SNOMED_CT, "code": "240589008"}]}},
        {"code": {"coding": [{"system": ICD_10_UK, "code": "B20.1"}]}},
        {"code": {"coding": [{"system": READ_V2, "code": "A788.00"}]}},
        {"code": {"coding": [{"system": ICD_10, "code": "a56.0\t"}]}},
        {"code": {"coding": [{"system": SNOMED_CT, "code": 'say "240589008"'}]}},
        {"extension": [{"url": "x", "valueCoding": {"system": ICD_10, "code": "O04.9"}}]},
        {"code": {"coding": [{"system": "http://example.org", "code": "B20.1"}]}},
        {
            "code": {"coding": [{"system": SNOMED_CT, "code": "195967001"}]},
            "note": [{"text": "B20.1 240589008"}],
        },
    ],
)
def test_reading_the_json_text_first_agrees_with_walking_every_coding(code_holder):
    codes = default_sensitive_codes()
    resource = {"resourceType": "Condition", "id": "c1", **code_holder}
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert codes.resource_is_sensitive(resource, canonical) == codes.resource_is_sensitive(resource)


def test_a_process_reloads_the_sets_only_when_they_changed(db, django_assert_num_queries):
    first = sensitive_codes_refresh()
    with django_assert_num_queries(1):
        again = sensitive_codes_refresh()
    SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT)
    changed = sensitive_codes_refresh()
    ConceptIsA.objects.create(child=CHILD, parent=ROOT, source="test")

    assert again is first
    assert changed.matches(SNOMED_CT, ROOT) and not first.matches(SNOMED_CT, ROOT)
    assert sensitive_codes_refresh().matches(SNOMED_CT, CHILD)


def test_loading_a_release_keeps_its_active_is_a_rows_and_is_idempotent(cast, tmp_path):
    path = rf2_file(
        tmp_path,
        [
            relationship(1, CHILD, ROOT),
            relationship(2, GRANDCHILD, CHILD),
            relationship(3, UNRELATED, ROOT, active="0"),
            relationship(4, UNRELATED, CHILD, type_id=FINDING_SITE),
        ],
    )

    call_command("snomed_hierarchy_load", str(path))
    call_command("snomed_hierarchy_load", str(path))

    loaded = set(ConceptIsA.objects.filter(source=path.name).values_list("child", "parent"))
    assert loaded == {(CHILD, ROOT), (GRANDCHILD, CHILD)}
    assert ConceptIsA.objects.filter(source=CURATED_SOURCE).count() == len(default_is_a())


def test_loading_a_release_re_flags_an_entry_whose_code_it_puts_below_a_sensitive_concept(cast, tmp_path):
    # A made-up concept, until the release says it is a kind of HIV infection.
    run = ingest(cast.cuh_feed, coded_condition("hiv-1", cast.patient_a, SNOMED_CT, CHILD, "HIV subtype"))
    entry = RecordEntry.objects.get(ingest_run=run)
    assert not entry.is_sensitive

    call_command("snomed_hierarchy_load", str(rf2_file(tmp_path, [relationship(1, CHILD, "86406008")])))

    entry.refresh_from_db()
    assert entry.is_sensitive


def test_replacing_a_release_removes_the_earlier_ones_relationships_but_not_the_curated_ones(cast, tmp_path):
    call_command(
        "snomed_hierarchy_load", str(rf2_file(tmp_path, [relationship(1, CHILD, ROOT)], name="a.txt"))
    )

    call_command(
        "snomed_hierarchy_load", str(rf2_file(tmp_path, [relationship(2, GRANDCHILD, ROOT)])), "--replace"
    )

    assert set(ConceptIsA.objects.exclude(source=CURATED_SOURCE).values_list("child", "parent")) == {
        (GRANDCHILD, ROOT)
    }
    assert ConceptIsA.objects.filter(source=CURATED_SOURCE).count() == len(default_is_a())


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["concept\tparent", f"{CHILD}\t{ROOT}"], "is not an RF2 relationship file"),
        (
            [RF2_HEADER.replace("typeId", "type"), relationship(1, CHILD, ROOT)],
            "is not an RF2 relationship file",
        ),
        ([RF2_HEADER, relationship(1, CHILD, ROOT), "1\t2\t1"], "line 3: 3 columns"),
        ([RF2_HEADER, relationship(1, CHILD, ROOT, active="yes")], "line 2: active is 'yes'"),
        ([RF2_HEADER, relationship(1, "C123", ROOT)], "line 2: sourceId and destinationId"),
    ],
)
def test_a_file_that_is_not_an_rf2_relationship_file_is_refused_and_loads_nothing(
    db, tmp_path, lines, message
):
    path = tmp_path / "relationships.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = ConceptIsA.objects.count()

    with pytest.raises(CommandError, match=message):
        call_command("snomed_hierarchy_load", str(path))

    assert ConceptIsA.objects.count() == before


def test_a_full_release_file_is_refused(db, tmp_path):
    path = rf2_file(tmp_path, [relationship(1, CHILD, ROOT)], name="sct2_Relationship_Full_INT_20250101.txt")

    with pytest.raises(CommandError, match="full release file"):
        call_command("snomed_hierarchy_load", str(path))

    assert not ConceptIsA.objects.filter(source=path.name).exists()


def test_the_load_command_exits_1_with_the_reason_on_a_file_of_another_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not\ta\trelationship\tfile\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "manage.py", "snomed_hierarchy_load", str(path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )

    assert result.returncode == 1
    assert "notes.txt is not an RF2 relationship file" in result.stderr


def queue_runs_at_once(monkeypatch) -> list[str]:
    """The refresh task, queued on commit by the back office, runs at once in this process; returns what ran."""
    ran: list[str] = []

    def run_now() -> None:
        ran.append("sensitive_flags_refresh_task")
        sensitive_flags_refresh_task()

    monkeypatch.setattr(sensitive_admin.sensitive_flags_refresh_task, "delay", run_now)
    return ran


def test_a_code_added_in_the_back_office_re_flags_an_entry_already_stored(
    admin_client, cast, monkeypatch, django_capture_on_commit_callbacks
):
    run = ingest(
        cast.cuh_feed, coded_condition("local-1", cast.patient_a, SNOMED_CT, ROOT, "Local STI concept")
    )
    entry = RecordEntry.objects.get(ingest_run=run)
    assert not entry.is_sensitive
    ran = queue_runs_at_once(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:consent_sensitivecode_add"),
            {
                "sensitive_set": STI,
                "system": SNOMED_CT,
                "code": f" {ROOT} ",
                "display": "Local STI concept",
                "include_descendants": "on",
            },
        )

    assert response.status_code == 302
    added = SensitiveCode.objects.get(system=SNOMED_CT, code=ROOT)
    assert (added.is_default, ran) == (False, ["sensitive_flags_refresh_task"])
    entry.refresh_from_db()
    assert entry.is_sensitive


def test_a_code_removed_in_the_back_office_unflags_the_entries_only_it_made_sensitive(
    admin_client, cast, monkeypatch, django_capture_on_commit_callbacks
):
    local = SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT)
    run = ingest(
        cast.cuh_feed,
        coded_condition("local-1", cast.patient_a, SNOMED_CT, ROOT, "Local STI concept"),
        coded_condition("hiv-1", cast.patient_a, SNOMED_CT, "86406008", "HIV infection"),
    )
    assert RecordEntry.objects.filter(ingest_run=run, is_sensitive=True).count() == 2
    queue_runs_at_once(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:consent_sensitivecode_delete", args=[local.pk]), {"post": "yes"}
        )

    assert response.status_code == 302
    flags = dict(RecordEntry.objects.filter(ingest_run=run).values_list("source_id", "is_sensitive"))
    assert flags == {"local-1": False, "hiv-1": True}


def test_a_default_code_cannot_be_deleted_nor_recoded_in_the_back_office(admin_client, cast):
    default = SensitiveCode.objects.get(system=SNOMED_CT, code="86406008")

    delete = admin_client.get(reverse("admin:consent_sensitivecode_delete", args=[default.pk]))
    admin_client.post(
        reverse("admin:consent_sensitivecode_change", args=[default.pk]),
        {
            "code": "195967001",
            "display": "Human immunodeficiency virus infection",
            "include_descendants": "on",
        },
    )
    changelist = admin_client.get(reverse("admin:consent_sensitivecode_changelist"))

    assert delete.status_code == 403
    assert SensitiveCode.objects.get(pk=default.pk).code == "86406008"
    assert "delete_selected" not in changelist.content.decode()


def test_the_back_office_lists_codes_by_set_and_finds_them_by_code_or_name(admin_client, cast):
    by_code = admin_client.get(reverse("admin:consent_sensitivecode_changelist"), {"q": "86406008"})
    by_name = admin_client.get(reverse("admin:consent_sensitivecode_changelist"), {"q": "gonorrhea"})
    by_set = admin_client.get(
        reverse("admin:consent_sensitivecode_changelist"),
        {"sensitive_set__exact": "termination-of-pregnancy"},
    )
    hierarchy = admin_client.get(reverse("admin:consent_conceptisa_changelist"), {"q": "240589008"})

    assert [row.code for row in by_code.context["cl"].result_list] == ["86406008"]
    assert [row.code for row in by_name.context["cl"].result_list] == ["15628003"]
    assert {row.sensitive_set for row in by_set.context["cl"].result_list} == {"termination-of-pregnancy"}
    assert [(row.child, row.parent) for row in hierarchy.context["cl"].result_list] == [
        ("240589008", "105629000")
    ]


def test_refreshing_twice_changes_nothing_the_second_time(cast):
    SensitiveCode.objects.create(sensitive_set=STI, system=SNOMED_CT, code=ROOT)
    ingest(cast.cuh_feed, coded_condition("local-1", cast.patient_a, SNOMED_CT, ROOT, "Local STI concept"))
    RecordEntry.objects.filter(source_id="local-1").update(is_sensitive=False)

    first = sensitive_flags_refresh(batch_size=1)
    second = sensitive_flags_refresh(batch_size=1)

    assert RecordEntry.objects.get(source_id="local-1").is_sensitive
    assert first >= 1
    assert second == 0
