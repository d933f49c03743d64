"""What a GP practice's system sends: the patient's demographics and the long-term record kept in primary care."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from records.demo import codes
from records.demo.codes import Concept, Problem
from records.demo.gp_care import alerts_and_legal, care_team, referral, social_context_and_assessments
from records.demo.partners import CPFT, PARTNER_NAMES
from records.demo.people import CLINICIAN_NAMES
from records.demo.resources import ODS_SYSTEM, ResourceBuilder, Story, instant, organisation_reference

_ACTIVE = {"coding": [{"system": codes.CONDITION_CLINICAL, "code": "active", "display": "Active"}]}
_CONFIRMED = {
    "coding": [{"system": codes.CONDITION_VERIFICATION, "code": "confirmed", "display": "Confirmed"}]
}
_ALLERGY_ACTIVE = {"coding": [{"system": codes.ALLERGY_CLINICAL, "code": "active", "display": "Active"}]}
_ALLERGY_CONFIRMED = {
    "coding": [{"system": codes.ALLERGY_VERIFICATION, "code": "confirmed", "display": "Confirmed"}]
}
_COMMUNITY = {
    "coding": [{"system": codes.MEDICATION_REQUEST_CATEGORY, "code": "community", "display": "Community"}]
}
_PROBLEM_LIST = [
    {
        "coding": [
            {"system": codes.CONDITION_CATEGORY, "code": "problem-list-item", "display": "Problem List Item"}
        ]
    }
]


def _lab_observation(
    builder: ResourceBuilder, key: str, concept: Concept, value: float, unit: str, days_ago: int
) -> None:
    taken = builder.at(days_ago, hour=9)
    reported = builder.before_reference(taken + timedelta(hours=builder.rng.randint(4, 30)))
    builder.add(
        "Observation",
        key,
        {
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": codes.OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
                    ]
                }
            ],
            "code": concept.codeable(),
            "subject": builder.subject,
            "effectiveDateTime": instant(taken),
            "issued": instant(reported),
            "valueQuantity": {"value": value, "unit": unit, "system": codes.UCUM, "code": unit},
            "performer": [builder.organisation],
        },
        updated=reported,
    )


def _last_autumn(builder: ResourceBuilder, seasons_back: int) -> int:
    """Days ago of a date in the autumn vaccination campaign, `seasons_back` seasons before the latest one."""
    reference = builder.reference
    year = reference.year if reference >= date(reference.year, 11, 1) else reference.year - 1
    given = date(year - seasons_back, builder.rng.choice((9, 10, 10, 11)), builder.rng.randint(1, 28))
    return max((reference - given).days, 1)


def _patient(builder: ResourceBuilder) -> None:
    patient = builder.patient
    name: dict[str, Any] = {"use": "official", "family": patient.family_name, "given": [patient.given_name]}
    if patient.prefix:
        name["prefix"] = [patient.prefix]
    telecom_use = "mobile" if patient.phone.startswith("07") else "home"
    builder.add(
        "Patient",
        "patient",
        {
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": patient.nhs_number}],
            "name": [name],
            "telecom": [{"system": "phone", "value": patient.phone, "use": telecom_use}],
            "gender": patient.gender,
            "birthDate": patient.birth_date.isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": [patient.address_line],
                    "city": patient.town,
                    "postalCode": patient.postcode,
                    "country": "GB",
                }
            ],
            "generalPractitioner": [
                {
                    "type": "Organization",
                    "identifier": {"system": ODS_SYSTEM, "value": patient.practice},
                    "display": PARTNER_NAMES[patient.practice],
                }
            ],
        },
        updated=builder.at(builder.rng.randint(30, 700)),
        # PDS "R": the patient's whereabouts are shown only to roles entitled to see them.
        confidentiality="R" if patient.story == Story.RESTRICTED else "",
    )


def _course(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.COURSE_OF_THERAPY, "code": code, "display": display}]}


def _supply(quantity: int, unit: str, days: int) -> dict[str, Any]:
    return {
        "quantity": {"value": quantity, "unit": unit},
        "expectedSupplyDuration": {"value": days, "unit": "days", "system": codes.UCUM, "code": "d"},
    }


def _repeat_prescription(builder: ResourceBuilder, key: str, problem: Problem, named_gp: str) -> None:
    """A repeat medicine as the GP system sends it: the latest issue of a year's authorisation, with how many
    issues have been made (UK Core's repeat information) and when the authorisation ends."""
    medicine = problem.medicine
    if medicine is None:
        return
    last_issued = builder.at(builder.rng.randint(3, 26))
    # Within one year's authorisation: issues at one supply's interval.
    issues = builder.rng.randint(1, min(12, 1 + 330 // medicine.supply_days))
    authorised = builder.before_reference(last_issued - timedelta(days=medicine.supply_days * (issues - 1)))
    expires = authorised + timedelta(days=365)
    builder.add(
        "MedicationRequest",
        f"medication/{key}",
        {
            "extension": [
                {
                    "url": codes.REPEAT_INFORMATION,
                    "extension": [
                        {"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issues},
                        {"url": "authorisationExpiryDate", "valueDateTime": instant(expires)},
                    ],
                }
            ],
            "status": "active",
            "intent": "order",
            "category": [_COMMUNITY],
            "medicationCodeableConcept": medicine.concept.codeable(),
            "subject": builder.subject,
            "authoredOn": instant(last_issued),
            "requester": {"display": named_gp},
            "reasonCode": [problem.concept.codeable()],
            "courseOfTherapyType": _course("continuous", "Continuous long term therapy"),
            "dosageInstruction": [{"text": medicine.dosage}],
            "dispenseRequest": {
                "validityPeriod": {"start": instant(authorised), "end": instant(expires)},
                # The authorisation allows twelve issues: the first and eleven repeats.
                "numberOfRepeatsAllowed": 11,
                **_supply(medicine.quantity, medicine.unit, medicine.supply_days),
            },
        },
        updated=last_issued,
    )


def _acute_prescription(builder: ResourceBuilder, named_gp: str) -> None:
    """A short course the GP prescribed once (every showcase patient has one)."""
    if not builder.chance(0.1):
        return
    name, dosage, quantity, unit = builder.rng.choice(codes.ACUTE_COURSES)
    issued = builder.at(builder.rng.randint(14, 200))
    builder.add(
        "MedicationRequest",
        "medication/acute",
        {
            "status": "completed",
            "intent": "order",
            "category": [_COMMUNITY],
            "medicationCodeableConcept": {"text": name},
            "subject": builder.subject,
            "authoredOn": instant(issued),
            "requester": {"display": named_gp},
            "courseOfTherapyType": _course("acute", "Short course (acute) therapy"),
            "dosageInstruction": [{"text": dosage}],
            "dispenseRequest": {"numberOfRepeatsAllowed": 0, "quantity": {"value": quantity, "unit": unit}},
        },
        updated=issued,
    )


def _problems_and_medicines(builder: ResourceBuilder, named_gp: str) -> None:
    for key in builder.patient.problems:
        problem = codes.PROBLEMS_BY_KEY[key]
        onset = builder.years_ago(1, 25)
        builder.add(
            "Condition",
            f"condition/{key}",
            {
                "clinicalStatus": _ACTIVE,
                "verificationStatus": _CONFIRMED,
                "category": _PROBLEM_LIST,
                "code": problem.concept.codeable(),
                "subject": builder.subject,
                "onsetDateTime": onset.date().isoformat(),
                "recordedDate": instant(onset),
            },
            updated=onset,
        )
        if problem.medicine is not None:
            _repeat_prescription(builder, key, problem, named_gp)


def _sensitive_history(builder: ResourceBuilder) -> None:
    """A few young adults have a treated sexually transmitted infection, so the demo shows sensitive withholding."""
    if not 18 <= builder.age <= 45 or builder.rng.random() >= 0.05:
        return
    diagnosed = builder.years_ago(1, 6)
    resolved = diagnosed + timedelta(days=21)
    builder.add(
        "Condition",
        "condition/sensitive",
        {
            "clinicalStatus": {
                "coding": [{"system": codes.CONDITION_CLINICAL, "code": "resolved", "display": "Resolved"}]
            },
            "verificationStatus": _CONFIRMED,
            "category": _PROBLEM_LIST,
            "code": codes.CHLAMYDIAL_INFECTION.codeable(),
            "subject": builder.subject,
            "onsetDateTime": diagnosed.date().isoformat(),
            "abatementDateTime": resolved.date().isoformat(),
            "recordedDate": instant(diagnosed),
        },
        updated=resolved,
    )


def _long_term_sensitive_condition(builder: ResourceBuilder) -> None:
    """The GP's half of a patient with sensitive items from two sources; the acute trust holds the other."""
    if builder.patient.story != Story.SENSITIVE_FROM_TWO_SOURCES:
        return
    diagnosed = builder.years_ago(2, 4)
    builder.add(
        "Condition",
        "condition/sensitive-long-term",
        {
            "clinicalStatus": _ACTIVE,
            "verificationStatus": _CONFIRMED,
            "category": _PROBLEM_LIST,
            "code": codes.HIV_INFECTION.codeable(),
            "subject": builder.subject,
            "onsetDateTime": diagnosed.date().isoformat(),
            "recordedDate": instant(diagnosed),
        },
        updated=diagnosed,
    )


def _referral_to_mental_health(builder: ResourceBuilder, named_gp: str) -> None:
    """A referral the mental-health trust has received and not yet acted on: all it knows of the patient."""
    if builder.patient.story != Story.REFERRAL_TO_MENTAL_HEALTH:
        return
    sent = builder.at(6)
    builder.add(
        "ServiceRequest",
        "referral/mental-health",
        {
            "status": "active",
            "intent": "order",
            "category": [codes.PATIENT_REFERRAL.codeable()],
            "code": {
                "coding": [codes.REFERRAL_TO_SERVICE.coding()],
                "text": "Referral to adult community mental health services",
            },
            "subject": builder.subject,
            "authoredOn": instant(sent),
            "requester": {"display": named_gp},
            "performer": [organisation_reference(CPFT, PARTNER_NAMES[CPFT])],
        },
        updated=sent,
    )


def _allergies(builder: ResourceBuilder) -> None:
    roll = builder.rng.random()
    recorded = builder.years_ago(1, 30)
    if builder.patient.showcase or roll < 0.25:
        allergy, category, reaction = builder.rng.choice(codes.ALLERGIES)
        severe = reaction.code == "39579001"
        builder.add(
            "AllergyIntolerance",
            "allergy/1",
            {
                "clinicalStatus": _ALLERGY_ACTIVE,
                "verificationStatus": _ALLERGY_CONFIRMED,
                "type": "allergy",
                "category": [category],
                "criticality": "high" if severe else "low",
                "code": allergy.codeable(),
                "patient": builder.subject,
                "recordedDate": instant(recorded),
                "reaction": [
                    {"manifestation": [reaction.codeable()], "severity": "severe" if severe else "mild"}
                ],
            },
            updated=recorded,
        )
    elif roll < 0.7:
        builder.add(
            "AllergyIntolerance",
            "allergy/none-known",
            {
                "clinicalStatus": _ALLERGY_ACTIVE,
                "verificationStatus": _ALLERGY_CONFIRMED,
                "code": codes.NO_KNOWN_ALLERGY.codeable(),
                "patient": builder.subject,
                "recordedDate": instant(recorded),
            },
            updated=recorded,
        )


def _immunisation(builder: ResourceBuilder, key: str, vaccine: Concept, days_ago: int) -> None:
    given = builder.at(days_ago)
    letters = "".join(builder.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
    builder.add(
        "Immunization",
        key,
        {
            "status": "completed",
            "vaccineCode": vaccine.codeable(),
            "patient": builder.subject,
            "occurrenceDateTime": instant(given),
            "recorded": instant(given),
            "primarySource": True,
            "lotNumber": f"{letters}{builder.rng.randint(1000, 9999)}",
        },
        updated=given,
    )


def _vaccinations(builder: ResourceBuilder) -> None:
    groups = {codes.PROBLEMS_BY_KEY[key].group for key in builder.patient.problems}
    at_risk = bool(groups & {"respiratory", "cardiac", "metabolic"})
    if builder.age >= 65 or at_risk or builder.patient.showcase:
        for season in range(2 if builder.age >= 65 else 1):
            _immunisation(
                builder,
                f"immunisation/influenza/{season}",
                codes.INFLUENZA_VACCINE,
                _last_autumn(builder, season),
            )
    if builder.age >= 66:
        days = builder.rng.randint(200, max((builder.age - 65) * 365, 201))
        _immunisation(builder, "immunisation/pneumococcal", codes.PNEUMOCOCCAL_VACCINE, days)
    if builder.age >= 75:
        _immunisation(builder, "immunisation/covid-19", codes.COVID_VACCINE, _last_autumn(builder, 0) + 3)


def _investigations(builder: ResourceBuilder) -> None:
    problems = set(builder.patient.problems)
    if "t2dm" in problems:
        for number, days in enumerate((builder.rng.randint(10, 60), builder.rng.randint(190, 240))):
            value = builder.rng.randint(48, 78)
            _lab_observation(builder, f"observation/hba1c/{number}", codes.HBA1C, value, "mmol/mol", days)
    if "ckd" in problems:
        egfr = builder.rng.randint(32, 58)
        _lab_observation(
            builder, "observation/egfr", codes.EGFR, egfr, "mL/min/{1.73_m2}", builder.rng.randint(20, 150)
        )
    cardiac = bool(problems & {"hypertension", "chd", "stroke", "heart-failure"})
    if cardiac or (builder.age >= 40 and builder.rng.random() < 0.3) or builder.patient.showcase:
        cholesterol = round(builder.rng.uniform(3.4, 6.8), 1)
        _lab_observation(
            builder,
            "observation/cholesterol",
            codes.CHOLESTEROL,
            cholesterol,
            "mmol/L",
            builder.rng.randint(30, 330),
        )


def gp_resources(builder: ResourceBuilder) -> None:
    """The GP record: the Patient first (it creates the patient), then problems, medicines and the rest."""
    named_gp = builder.rng.choice(CLINICIAN_NAMES)
    _patient(builder)
    _problems_and_medicines(builder, named_gp)
    _sensitive_history(builder)
    _long_term_sensitive_condition(builder)
    _allergies(builder)
    _vaccinations(builder)
    _investigations(builder)
    social_context_and_assessments(builder)
    alerts_and_legal(builder)
    referral(builder, named_gp)
    _referral_to_mental_health(builder, named_gp)
    care_team(builder, named_gp)
    _acute_prescription(builder, named_gp)
