"""What the acute trusts and the ambulance service send: attendances, admissions, results, procedures, letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from records.demo import codes, documents
from records.demo.codes import Concept
from records.demo.partners import COMMUNITY_SERVICES, PARTNER_NAMES
from records.demo.people import CLINICIAN_NAMES
from records.demo.resources import ResourceBuilder, Story, instant, organisation_reference, text_concept

_EMERGENCY = {"system": codes.ACT_CODE, "code": "EMER", "display": "emergency"}
_INPATIENT = {"system": codes.ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
_AMBULATORY = {"system": codes.ACT_CODE, "code": "AMB", "display": "ambulatory"}
_LABORATORY = [
    {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
]
_VITAL_SIGNS = [
    {"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
]
_HAEMATOLOGY = [{"coding": [{"system": codes.DIAGNOSTIC_SECTION, "code": "HM", "display": "Hematology"}]}]
_CHEMISTRY = [{"coding": [{"system": codes.DIAGNOSTIC_SECTION, "code": "CH", "display": "Chemistry"}]}]
_MICROBIOLOGY = [{"coding": [{"system": codes.DIAGNOSTIC_SECTION, "code": "MB", "display": "Microbiology"}]}]


def _document(
    builder: ResourceBuilder,
    key: str,
    *,
    type_: dict[str, Any],
    title: str,
    text: str,
    written: datetime,
    encounter: str,
    period: dict[str, str],
    forms: tuple[str, ...] = (documents.TEXT,),
    actions: tuple[str, ...] = (),
) -> None:
    """A letter about an encounter, its content inline in each of `forms` (plain text unless said)."""
    documents.document_reference(
        builder,
        key,
        type_=type_,
        title=title,
        written=written,
        encounter=encounter,
        period=period,
        content=documents.attachments(forms, title, [text], list(actions), written),
    )


@dataclass(frozen=True)
class _Test:
    """One laboratory test of a panel: what it measures, in which unit, its adult reference range, and the range
    the demo draws values from (wider, so that some results fall outside the reference range)."""

    key: str
    concept: Concept
    unit: str
    low: float
    high: float
    draw_low: float
    draw_high: float
    decimals: int = 0


def _ranges(female: bool) -> tuple[tuple[_Test, ...], tuple[_Test, ...]]:
    """The full blood count and the urea and electrolytes, with the reference ranges UK laboratories print."""
    haemoglobin = (115, 160) if female else (130, 180)
    creatinine = (45, 84) if female else (59, 104)
    full_blood_count = (
        _Test("haemoglobin", codes.HAEMOGLOBIN, "g/L", *haemoglobin, 98, 170),
        _Test("white-cells", codes.WHITE_CELLS, "10*9/L", 4.0, 11.0, 4.0, 16.5, 1),
        _Test("platelets", codes.PLATELETS, "10*9/L", 150, 400, 140, 420),
    )
    electrolytes = (
        _Test("sodium", codes.SODIUM, "mmol/L", 133, 146, 128, 145),
        _Test("potassium", codes.POTASSIUM, "mmol/L", 3.5, 5.3, 3.4, 5.6, 1),
        _Test("urea", codes.UREA, "mmol/L", 2.5, 7.8, 3.0, 11.5, 1),
        _Test("creatinine", codes.CREATININE, "umol/L", *creatinine, 50, 160),
    )
    return full_blood_count, electrolytes


def _quantity_of(value: float, unit: str) -> dict[str, Any]:
    shown = {"umol/L": "\u00b5mol/L"}.get(unit, unit)
    return {"value": value, "unit": shown, "system": codes.UCUM, "code": unit}


def _interpretation(value: float, test: _Test) -> list[dict[str, Any]]:
    code, display = (
        ("L", "Low") if value < test.low else ("H", "High") if value > test.high else ("N", "Normal")
    )
    return [{"coding": [{"system": codes.INTERPRETATION, "code": code, "display": display}]}]


def _panel(
    builder: ResourceBuilder,
    key: str,
    encounter: str,
    taken: datetime,
    *,
    name: Concept | dict[str, Any],
    category: list[dict[str, Any]],
    tests: tuple[_Test, ...],
    abnormal: str = "",
) -> None:
    """A laboratory report and the results it points at, each with its reference range and the lab's flag.

    `abnormal` names a test whose value is moved above its range when every drawn value was within range, so a
    showcase patient's panel always shows a flagged result."""
    reported = builder.before_reference(taken + timedelta(hours=2))
    values = {
        test.key: round(builder.rng.uniform(test.draw_low, test.draw_high), test.decimals) for test in tests
    }
    if abnormal and all(test.low <= values[test.key] <= test.high for test in tests):
        test = next(test for test in tests if test.key == abnormal)
        values[abnormal] = round(test.high * 1.2, test.decimals)
    results = []
    for test in tests:
        value: float = values[test.key]
        if test.decimals == 0:
            value = int(value)
        full_url = builder.add(
            "Observation",
            f"{key}/{test.key}",
            {
                "status": "final",
                "category": _LABORATORY,
                "code": test.concept.codeable(),
                "subject": builder.subject,
                "encounter": {"reference": encounter},
                "effectiveDateTime": instant(taken),
                "issued": instant(reported),
                "valueQuantity": _quantity_of(value, test.unit),
                "interpretation": _interpretation(value, test),
                "referenceRange": [
                    {"low": _quantity_of(test.low, test.unit), "high": _quantity_of(test.high, test.unit)}
                ],
            },
            updated=reported,
        )
        results.append({"reference": full_url})
    builder.add(
        "DiagnosticReport",
        key,
        {
            "status": "final",
            "category": category,
            "code": name.codeable() if isinstance(name, Concept) else name,
            "subject": builder.subject,
            "encounter": {"reference": encounter},
            "effectiveDateTime": instant(taken),
            "issued": instant(reported),
            "performer": [builder.organisation],
            "result": results,
            "conclusion": "Reviewed by the admitting team.",
        },
        updated=reported,
    )


def _blood_results(builder: ResourceBuilder, key: str, encounter: str, taken: datetime) -> None:
    """A full blood count and urea and electrolytes from one sample: two reports and the results they point at."""
    full_blood_count, electrolytes = _ranges(builder.patient.gender == "female")
    showcase = builder.patient.showcase
    _panel(
        builder,
        key,
        encounter,
        taken,
        name=codes.FULL_BLOOD_COUNT,
        category=_HAEMATOLOGY,
        tests=full_blood_count,
        abnormal="white-cells" if showcase else "",
    )
    _panel(
        builder,
        f"{key}/electrolytes",
        encounter,
        taken,
        name=text_concept("Urea and electrolytes"),
        category=_CHEMISTRY,
        tests=electrolytes,
        abnormal="urea" if showcase else "",
    )


def _emergency_attendance(builder: ResourceBuilder, number: int, days_ago: int) -> None:
    arrived = builder.at(days_ago)
    left = builder.before_reference(arrived + timedelta(hours=builder.rng.randint(2, 9)))
    reason = builder.pick(codes.PRESENTATIONS)
    period = {"start": instant(arrived), "end": instant(left)}
    encounter = builder.add(
        "Encounter",
        f"encounter/emergency/{number}",
        {
            "status": "finished",
            "class": _EMERGENCY,
            "type": [codes.EMERGENCY_VISIT.codeable()],
            "subject": builder.subject,
            "period": period,
            "reasonCode": [reason.codeable()],
            "hospitalization": {"dischargeDisposition": text_concept("Discharged home")},
            "serviceProvider": builder.organisation,
        },
        updated=left,
    )
    if number == 0 and builder.chance(0.6):
        _blood_results(builder, f"report/emergency/{number}", encounter, arrived + timedelta(minutes=40))
    if number == 0 and builder.chance(0.4):
        letter = (
            f"Attended the emergency department with {reason.display.lower()}. Examined and investigated; "
            "no serious cause found. Discharged home with advice. GP: please review in one to two weeks."
        )
        _document(
            builder,
            f"document/emergency/{number}",
            type_={"text": "Emergency department discharge letter"},
            title="Emergency department discharge letter",
            text=letter,
            written=left,
            encounter=encounter,
            period=period,
        )


def _admission(builder: ResourceBuilder) -> None:
    reason = builder.pick(codes.ADMISSION_REASONS)
    in_progress = builder.rng.random() < 0.1
    admitted = builder.at(builder.rng.randint(1, 6) if in_progress else builder.rng.randint(8, 900))
    period = {"start": instant(admitted)}
    discharged = builder.before_reference(admitted + timedelta(days=builder.rng.randint(2, 12), hours=3))
    if not in_progress:
        period["end"] = instant(discharged)
    body: dict[str, Any] = {
        "status": "in-progress" if in_progress else "finished",
        "class": _INPATIENT,
        "type": [codes.HOSPITAL_ADMISSION.codeable()],
        "subject": builder.subject,
        "period": period,
        "reasonCode": [reason.codeable()],
        "hospitalization": {"admitSource": text_concept("Emergency department")},
        "serviceProvider": builder.organisation,
    }
    if not in_progress:
        body["hospitalization"]["dischargeDisposition"] = text_concept("Usual place of residence")
    encounter = builder.add(
        "Encounter", "encounter/admission", body, updated=admitted if in_progress else discharged
    )
    _blood_results(builder, "report/admission", encounter, admitted + timedelta(hours=1))
    procedure = codes.ADMISSION_PROCEDURES.get(reason.code)
    if procedure is not None:
        performed = admitted + timedelta(hours=builder.rng.randint(3, 40))
        builder.add(
            "Procedure",
            "procedure/admission",
            {
                "status": "completed",
                "code": procedure.codeable(),
                "subject": builder.subject,
                "encounter": {"reference": encounter},
                "performedDateTime": instant(builder.before_reference(performed)),
            },
            updated=builder.before_reference(performed),
        )
    if in_progress:
        return
    consultant = builder.rng.choice(CLINICIAN_NAMES)
    summary = (
        f"Admitted with {reason.display.lower()}. Treated on the ward and discharged to usual residence after "
        f"{(discharged - admitted).days} days. Medicines unchanged unless listed. Follow-up: GP review in two "
        f"weeks. Consultant: {consultant}."
    )
    _document(
        builder,
        "document/discharge-summary",
        type_=codes.DISCHARGE_SUMMARY.codeable(),
        title="Inpatient discharge summary",
        text=summary,
        written=discharged,
        encounter=encounter,
        period=period,
        # The trust's letter template: HTML for systems that show it, and the same letter as a PDF.
        forms=(documents.HTML, documents.PDF),
        actions=("Review in the practice in two weeks.", "Continue the medicines listed on discharge."),
    )
    if builder.chance(0.4):
        builder.add(
            "ServiceRequest",
            "referral/discharge",
            {
                "status": "active",
                "intent": "order",
                "category": [codes.PATIENT_REFERRAL.codeable()],
                "code": {
                    "coding": [codes.REFERRAL_TO_SERVICE.coding()],
                    "text": "Referral to community rehabilitation",
                },
                "subject": builder.subject,
                "encounter": {"reference": encounter},
                "authoredOn": instant(discharged),
                "requester": {"display": consultant},
                "performer": [organisation_reference(COMMUNITY_SERVICES, PARTNER_NAMES[COMMUNITY_SERVICES])],
            },
            updated=discharged,
        )


def _sexual_health_result(builder: ResourceBuilder) -> None:
    """The acute trust's half of a patient with sensitive items from two sources: its sexual health clinic's
    positive chlamydia test."""
    if builder.patient.story != Story.SENSITIVE_FROM_TWO_SOURCES:
        return
    taken = builder.at(builder.rng.randint(40, 200))
    reported = builder.before_reference(taken + timedelta(days=2))
    builder.add(
        "DiagnosticReport",
        "report/sexual-health",
        {
            "status": "final",
            "category": _MICROBIOLOGY,
            "code": text_concept("Chlamydia trachomatis nucleic acid amplification test"),
            "subject": builder.subject,
            "effectiveDateTime": instant(taken),
            "issued": instant(reported),
            "performer": [builder.organisation],
            "conclusion": "Chlamydia trachomatis detected. Treated in clinic.",
            "conclusionCode": [codes.CHLAMYDIA_TRACHOMATIS_INFECTION.codeable()],
        },
        updated=reported,
    )


def acute_resources(builder: ResourceBuilder) -> None:
    """An acute trust: emergency attendances (a recent one for showcase patients), maybe an admission."""
    first_days_ago = 3 if builder.patient.showcase else builder.rng.randint(2, 700)
    _emergency_attendance(builder, 0, first_days_ago)
    if builder.rng.random() < 0.3:
        _emergency_attendance(builder, 1, builder.rng.randint(701, 1500))
    if builder.chance(0.35):
        _admission(builder)
    _sexual_health_result(builder)
    if builder.rng.random() < 0.1:
        performed = builder.at(builder.rng.randint(60, 1500))
        builder.add(
            "Procedure",
            "procedure/elective",
            {
                "status": "completed",
                "code": builder.pick(codes.ELECTIVE_PROCEDURES).codeable(),
                "subject": builder.subject,
                "performedDateTime": instant(performed),
            },
            updated=performed,
        )


def papworth_resources(builder: ResourceBuilder) -> None:
    """The heart and lung hospital: a clinic appointment, the test or operation it led to, and the letter."""
    respiratory_only = "copd" in builder.patient.problems and not {"chd", "af", "heart-failure"} & set(
        builder.patient.problems
    )
    clinic = "Respiratory outpatient appointment" if respiratory_only else "Cardiology outpatient appointment"
    seen = builder.at(builder.rng.randint(14, 400))
    period = {"start": instant(seen), "end": instant(seen + timedelta(minutes=30))}
    encounter = builder.add(
        "Encounter",
        "encounter/outpatient",
        {
            "status": "finished",
            "class": _AMBULATORY,
            "type": [text_concept(clinic)],
            "subject": builder.subject,
            "period": period,
            "serviceProvider": builder.organisation,
        },
        updated=seen + timedelta(minutes=30),
    )
    if "chd" in builder.patient.problems:
        procedure = builder.pick(codes.CARDIAC_PROCEDURES[2:])
    else:
        procedure = builder.pick(codes.CARDIAC_PROCEDURES[:2])
    performed = seen + timedelta(minutes=20)
    builder.add(
        "Procedure",
        "procedure/cardiothoracic",
        {
            "status": "completed",
            "code": procedure.codeable(),
            "subject": builder.subject,
            "encounter": {"reference": encounter},
            "performedDateTime": instant(performed),
        },
        updated=performed,
    )
    consultant = builder.rng.choice(CLINICIAN_NAMES)
    letter = (
        f"Seen in clinic. {procedure.display} performed. Plan: continue current medicines, review in six "
        f"months. {consultant}, consultant."
    )
    written = builder.before_reference(seen + timedelta(days=2))
    _document(
        builder,
        "document/clinic-letter",
        type_={"text": "Outpatient clinic letter"},
        title=f"{clinic}: clinic letter",
        text=letter,
        written=written,
        encounter=encounter,
        period=period,
        # The heart and lung hospital sends its clinic letters as PDF only.
        forms=(documents.PDF,),
    )


def _vital_sign(
    builder: ResourceBuilder,
    key: str,
    encounter: str,
    taken: datetime,
    concept: Concept,
    value: dict[str, Any],
) -> None:
    builder.add(
        "Observation",
        key,
        {
            "status": "final",
            "category": _VITAL_SIGNS,
            "code": concept.codeable(),
            "subject": builder.subject,
            "encounter": {"reference": encounter},
            "effectiveDateTime": instant(taken),
            **value,
        },
        updated=taken,
    )


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": unit, "system": codes.UCUM, "code": unit}}


def ambulance_resources(builder: ResourceBuilder) -> None:
    """An ambulance incident and the observations the crew took."""
    incidents = 2 if builder.rng.random() < 0.25 else 1
    for number in range(incidents):
        days_ago = 10 if builder.patient.showcase and number == 0 else builder.rng.randint(2, 900)
        called = builder.at(days_ago)
        handed_over = builder.before_reference(called + timedelta(minutes=builder.rng.randint(40, 110)))
        reason = builder.pick(codes.PRESENTATIONS)
        conveyed = builder.rng.random() < 0.65
        outcome = "Conveyed to emergency department" if conveyed else "Treated at scene, not conveyed"
        encounter = builder.add(
            "Encounter",
            f"encounter/incident/{number}",
            {
                "status": "finished",
                "class": _EMERGENCY,
                "type": [text_concept("Emergency ambulance attendance")],
                "subject": builder.subject,
                "period": {"start": instant(called), "end": instant(handed_over)},
                "reasonCode": [reason.codeable()],
                "hospitalization": {"dischargeDisposition": text_concept(outcome)},
                "serviceProvider": builder.organisation,
            },
            updated=handed_over,
        )
        taken = called + timedelta(minutes=15)
        prefix = f"observation/incident/{number}"
        _vital_sign(
            builder,
            f"{prefix}/heart-rate",
            encounter,
            taken,
            codes.HEART_RATE,
            _quantity(builder.rng.randint(58, 124), "/min"),
        )
        _vital_sign(
            builder,
            f"{prefix}/respiratory-rate",
            encounter,
            taken,
            codes.RESPIRATORY_RATE,
            _quantity(builder.rng.randint(12, 28), "/min"),
        )
        _vital_sign(
            builder,
            f"{prefix}/oxygen-saturation",
            encounter,
            taken,
            codes.OXYGEN_SATURATION,
            _quantity(builder.rng.randint(89, 99), "%"),
        )
        _vital_sign(
            builder,
            f"{prefix}/temperature",
            encounter,
            taken,
            codes.BODY_TEMPERATURE,
            _quantity(round(builder.rng.uniform(36.1, 38.9), 1), "Cel"),
        )
        systolic, diastolic = builder.rng.randint(98, 172), builder.rng.randint(58, 98)
        _vital_sign(
            builder,
            f"{prefix}/blood-pressure",
            encounter,
            taken,
            codes.BLOOD_PRESSURE,
            {
                "component": [
                    {"code": codes.SYSTOLIC.codeable(), **_quantity(systolic, "mm[Hg]")},
                    {"code": codes.DIASTOLIC.codeable(), **_quantity(diastolic, "mm[Hg]")},
                ]
            },
        )
