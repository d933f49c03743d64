"""Words for codes: the names of the code systems partners use, and the display text of the concepts we know.

Pure and dependency-free, so that the ingest mapping (for an entry's summary) and `records.clinical` (for what a
clinician reads) say the same words. What always holds: a code is never shown bare; a code we cannot name is shown as
"Code <code> (<system name>), no description sent", and a system we cannot name is called the sender's own.
"""

from __future__ import annotations

import re

SNOMED_CT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DMD = "https://dmd.nhs.uk"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

SYSTEM_NAMES: dict[str, str] = {
    SNOMED_CT: "SNOMED CT",
    LOINC: "LOINC",
    DMD: "dm+d",
    UCUM: "UCUM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://hl7.org/fhir/sid/icd-10-uk": "ICD-10",
    "http://read.info/readv2": "Read v2",
    "http://read.info/ctv3": "CTV3",
    ACT_CODE: "HL7 encounter class",
    INTERPRETATION: "HL7 result interpretation",
    "http://terminology.hl7.org/CodeSystem/v2-0074": "HL7 diagnostic service section",
    "http://terminology.hl7.org/CodeSystem/observation-category": "HL7 observation category",
}

# Concepts a partner may send as a bare code. SNOMED CT and LOINC displays are the concepts' preferred terms in the
# UK; the HL7 codes are the FHIR R4 code systems' own, in plain English.
KNOWN_CODES: dict[tuple[str, str], str] = {
    # Encounter class (v3 ActCode).
    (ACT_CODE, "AMB"): "Ambulatory (outpatient)",
    (ACT_CODE, "EMER"): "Emergency",
    (ACT_CODE, "FLD"): "Field (at the scene)",
    (ACT_CODE, "HH"): "Home visit",
    (ACT_CODE, "IMP"): "Inpatient",
    (ACT_CODE, "ACUTE"): "Inpatient (acute)",
    (ACT_CODE, "NONAC"): "Inpatient (non-acute)",
    (ACT_CODE, "OBSENC"): "Observation stay",
    (ACT_CODE, "PRENC"): "Pre-admission",
    (ACT_CODE, "SS"): "Short stay",
    (ACT_CODE, "VR"): "Virtual (remote)",
    # Result interpretation.
    (INTERPRETATION, "H"): "High",
    (INTERPRETATION, "HH"): "Critically high",
    (INTERPRETATION, "HU"): "Significantly high",
    (INTERPRETATION, "L"): "Low",
    (INTERPRETATION, "LL"): "Critically low",
    (INTERPRETATION, "LU"): "Significantly low",
    (INTERPRETATION, "A"): "Abnormal",
    (INTERPRETATION, "AA"): "Critically abnormal",
    (INTERPRETATION, "N"): "Normal",
    (INTERPRETATION, "POS"): "Positive",
    (INTERPRETATION, "NEG"): "Negative",
    (INTERPRETATION, "DET"): "Detected",
    (INTERPRETATION, "ND"): "Not detected",
    # SNOMED CT: the concepts of the demo partners' records, and common ones of UK primary and acute care.
    (SNOMED_CT, "44054006"): "Type 2 diabetes mellitus",
    (SNOMED_CT, "46635009"): "Type 1 diabetes mellitus",
    (SNOMED_CT, "38341003"): "Hypertension",
    (SNOMED_CT, "195967001"): "Asthma",
    (SNOMED_CT, "13645005"): "Chronic obstructive pulmonary disease",
    (SNOMED_CT, "49436004"): "Atrial fibrillation",
    (SNOMED_CT, "84114007"): "Heart failure",
    (SNOMED_CT, "53741008"): "Coronary arteriosclerosis",
    (SNOMED_CT, "22298006"): "Myocardial infarction",
    (SNOMED_CT, "396275006"): "Osteoarthritis",
    (SNOMED_CT, "709044004"): "Chronic kidney disease",
    (SNOMED_CT, "40930008"): "Hypothyroidism",
    (SNOMED_CT, "35489007"): "Depressive disorder",
    (SNOMED_CT, "197480006"): "Anxiety disorder",
    (SNOMED_CT, "58214004"): "Schizophrenia",
    (SNOMED_CT, "13746004"): "Bipolar disorder",
    (SNOMED_CT, "52448006"): "Dementia",
    (SNOMED_CT, "230690007"): "Cerebrovascular accident",
    (SNOMED_CT, "84757009"): "Epilepsy",
    (SNOMED_CT, "37796009"): "Migraine",
    (SNOMED_CT, "64859006"): "Osteoporosis",
    (SNOMED_CT, "235595009"): "Gastro-oesophageal reflux disease",
    # In the national sensitive sets: shown only where the entry is, to those entitled to it.
    (SNOMED_CT, "86406008"): "Human immunodeficiency virus infection",
    (SNOMED_CT, "105629000"): "Chlamydial infection",
    (SNOMED_CT, "240589008"): "Chlamydia trachomatis infection",
    (SNOMED_CT, "91936005"): "Allergy to penicillin",
    (SNOMED_CT, "91935009"): "Allergy to peanut",
    (SNOMED_CT, "300916003"): "Latex allergy",
    (SNOMED_CT, "91930004"): "Allergy to eggs",
    (SNOMED_CT, "716186003"): "No known allergy",
    (SNOMED_CT, "271807003"): "Eruption of skin",
    (SNOMED_CT, "39579001"): "Anaphylaxis",
    (SNOMED_CT, "126485001"): "Urticaria",
    (SNOMED_CT, "422587007"): "Nausea",
    (SNOMED_CT, "325278007"): "Metformin 500mg tablets",
    (SNOMED_CT, "319283006"): "Amlodipine 5mg tablets",
    (SNOMED_CT, "318906001"): "Ramipril 10mg capsules",
    (SNOMED_CT, "320176004"): "Salbutamol 100micrograms/dose inhaler",
    (SNOMED_CT, "322236009"): "Paracetamol 500mg tablets",
    (SNOMED_CT, "836377006"): "Influenza virus antigen-containing vaccine product",
    (SNOMED_CT, "836398006"): "Streptococcus pneumoniae antigen-containing vaccine product",
    (SNOMED_CT, "1119349007"): "SARS-CoV-2 mRNA vaccine",
    (SNOMED_CT, "266919005"): "Never smoked tobacco",
    (SNOMED_CT, "8517006"): "Ex-smoker",
    (SNOMED_CT, "77176002"): "Smoker",
    (SNOMED_CT, "105529008"): "Lives alone",
    (SNOMED_CT, "4525004"): "Emergency department patient visit",
    (SNOMED_CT, "32485007"): "Hospital admission",
    (SNOMED_CT, "439708006"): "Home visit",
    (SNOMED_CT, "373942005"): "Discharge summary",
    (SNOMED_CT, "3457005"): "Patient referral",
    (SNOMED_CT, "306206005"): "Referral to service",
    (SNOMED_CT, "29857009"): "Chest pain",
    (SNOMED_CT, "1912002"): "Fall",
    (SNOMED_CT, "267036007"): "Dyspnoea",
    (SNOMED_CT, "68566005"): "Urinary tract infection",
    (SNOMED_CT, "128045006"): "Cellulitis",
    (SNOMED_CT, "385093006"): "Community acquired pneumonia",
    (SNOMED_CT, "5913000"): "Fracture of neck of femur",
    (SNOMED_CT, "195951007"): "Acute exacerbation of chronic obstructive pulmonary disease",
    (SNOMED_CT, "52734007"): "Total hip replacement",
    (SNOMED_CT, "415070008"): "Percutaneous coronary intervention",
    (SNOMED_CT, "399208008"): "Plain chest X-ray",
    (SNOMED_CT, "45595009"): "Laparoscopic cholecystectomy",
    (SNOMED_CT, "73761001"): "Colonoscopy",
    (SNOMED_CT, "609588000"): "Total knee replacement",
    (SNOMED_CT, "80146002"): "Appendicectomy",
    (SNOMED_CT, "40701008"): "Echocardiography",
    (SNOMED_CT, "29303009"): "Electrocardiographic procedure",
    (SNOMED_CT, "232717009"): "Coronary artery bypass graft",
    (SNOMED_CT, "26604007"): "Full blood count",
    (SNOMED_CT, "72313002"): "Systolic arterial pressure",
    (SNOMED_CT, "1091811000000102"): "Diastolic arterial pressure",
    # LOINC.
    (LOINC, "59261-8"): "Haemoglobin A1c (IFCC)",
    (LOINC, "2093-3"): "Serum cholesterol",
    (LOINC, "33914-3"): "Estimated glomerular filtration rate",
    (LOINC, "2160-0"): "Serum creatinine",
    (LOINC, "22664-7"): "Serum urea",
    (LOINC, "718-7"): "Haemoglobin",
    (LOINC, "6690-2"): "White cell count",
    (LOINC, "777-3"): "Platelet count",
    (LOINC, "2951-2"): "Serum sodium",
    (LOINC, "2823-3"): "Serum potassium",
    (LOINC, "1988-5"): "C-reactive protein",
    (LOINC, "58410-2"): "Full blood count",
    (LOINC, "8867-4"): "Heart rate",
    (LOINC, "9279-1"): "Respiratory rate",
    (LOINC, "59408-5"): "Oxygen saturation by pulse oximetry",
    (LOINC, "8310-5"): "Body temperature",
    (LOINC, "85354-9"): "Blood pressure",
    (LOINC, "8480-6"): "Systolic blood pressure",
    (LOINC, "8462-4"): "Diastolic blood pressure",
    (LOINC, "72166-2"): "Tobacco smoking status",
    (LOINC, "44261-6"): "PHQ-9 total score",
    (LOINC, "29463-7"): "Body weight",
    (LOINC, "8302-2"): "Body height",
    (LOINC, "39156-5"): "Body mass index",
}
# dm+d codes are SNOMED CT concepts: a partner may send them under either system.
KNOWN_CODES.update(
    {(DMD, code): display for (system, code), display in list(KNOWN_CODES.items()) if system == SNOMED_CT}
)

_URL = re.compile(r"^(?:https?://|urn:|www\.)", re.IGNORECASE)
# One word with a capital inside it: an internal name (CareAct2014NeedsAssessment), not a clinical term.
_CAMEL_CASE = re.compile(r"^[A-Za-z]+[a-z0-9]+[A-Z][A-Za-z0-9]*$")
# A code: digits, or one run of letters, digits, dots and hyphens with at least one digit (8867-4, D81001, R8000).
_CODE = re.compile(r"^(?:\d[\d.\-]*|(?=[A-Za-z0-9.\-]*\d)[A-Za-z0-9.\-]+)$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z0-9])|(?<=[0-9])(?=[A-Za-z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[-_.\s]+")
# A code that is an English word or two (FHIR's own codes: "female", "home-health").
_WORD_CODE = re.compile(r"^[a-z]+(?:-[a-z]+)*$")
_EXPRESSION = re.compile(r"^\s*\d{6,18}\s*\|\s*([^|]+?)\s*\|?\s*$")


def system_name(system: str) -> str:
    return SYSTEM_NAMES.get(system, "the sender's own code system" if system else "no code system named")


def known_display(system: str, code: str) -> str:
    """The display text of a concept we know, or ""."""
    return KNOWN_CODES.get((system, code), "")


def code_in_words(system: str, code: str) -> str:
    """A concept sent as a code only: its known display; a code that is itself a word ("female") as that word;
    else a sentence that says only a code was sent."""
    known = known_display(system, code)
    if known:
        return known
    if _WORD_CODE.match(code):
        words = code.replace("-", " ")
        return words[:1].upper() + words[1:]
    return f"Code {code} ({system_name(system)}), no description sent"


def plain_term(value: str) -> str:
    """A term without the SNOMED CT compositional form some senders put in text ("9339101000001105 | Septrin |"
    -> "Septrin")."""
    match = _EXPRESSION.match(value)
    return match.group(1) if match else value


def capitalised(value: str) -> str:
    """The first letter in capitals when the first word is in lower case ("inpatient encounter"), so that an
    acronym or a name keeps its case ("eGFR", "McKenzie")."""
    first = value.split(" ", 1)[0]
    return value[:1].upper() + value[1:] if first.islower() and first.isalpha() else value


def looks_like_identifier(value: str) -> bool:
    """True for what a reader should never be shown as a name: a bare code, an internal CamelCase name, a URL."""
    value = value.strip()
    if not value:
        return False
    return bool(_URL.match(value) or _CODE.match(value) or _CAMEL_CASE.match(value))


def readable_name(identifier: str) -> str:
    """Words from an internal name: "CareAct2014NeedsAssessment" -> "Care Act 2014 Needs Assessment"."""
    words = [word for part in _SEPARATORS.split(identifier) for word in _CAMEL_BOUNDARY.split(part) if word]
    return " ".join(words)


# UCUM codes as a reader writes them ("\u00d7" is the multiplication sign); a unit not here is shown as sent.
_UNITS = {
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "[degF]": "°F",
    "10*9/L": "\u00d710\u2079/L",
    "10*12/L": "\u00d710\u00b9\u00b2/L",
    "mL/min/{1.73_m2}": "mL/min/1.73m²",
    "{beats}/min": "beats/min",
    "{breaths}/min": "breaths/min",
    "kg/m2": "kg/m²",
    "[drp]": "drop",
    "{tbl}": "tablet",
    "{capsule}": "capsule",
}


def unit_text(unit: str) -> str:
    return _UNITS.get(unit, unit)
