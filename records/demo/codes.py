"""A small curated terminology for the demo: codes we are confident of, and plain text where we are not.

SNOMED CT concept ids below were chosen because they are well established (international release, or dm+d
virtual medicinal products that the NHS prints in its own examples). Where no code was certain, the demo sends
text only, which is valid FHIR and is what a partner with an uncoded item would send too.
"""

from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# dm+d products are SNOMED CT concepts from the UK drug extension; UK Core codes them with the SNOMED system.
DMD = SNOMED
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSTIC_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
MEDICATION_STATEMENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
MEDICATION_REQUEST_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
COURSE_OF_THERAPY = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# UK Core's repeat information of a repeat prescription: how many issues were made, when the authorisation ends.
REPEAT_INFORMATION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)


@dataclass(frozen=True)
class Concept:
    code: str
    display: str
    system: str = SNOMED

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}

    def codeable(self) -> dict[str, object]:
        return {"coding": [self.coding()], "text": self.display}


@dataclass(frozen=True)
class Medicine:
    concept: Concept
    dosage: str
    # What one issue supplies: a quantity in the medicine's unit of presentation, and how many days it lasts.
    quantity: int = 28
    unit: str = "tablet"
    supply_days: int = 28


@dataclass(frozen=True)
class Problem:
    """A long-term condition a GP codes, who tends to have it, and what it brings with it."""

    key: str
    concept: Concept
    min_age: int
    weight: float
    group: str
    medicine: Medicine | None = None


METFORMIN = Medicine(
    Concept("325278007", "Metformin 500mg tablets", DMD), "One tablet twice a day with meals", 56
)
AMLODIPINE = Medicine(Concept("319283006", "Amlodipine 5mg tablets", DMD), "One tablet once a day")
RAMIPRIL = Medicine(
    Concept("318906001", "Ramipril 10mg capsules", DMD), "One capsule once a day", unit="capsule"
)
SALBUTAMOL = Medicine(
    Concept("320176004", "Salbutamol 100micrograms/dose inhaler", DMD),
    "Two puffs when required for breathlessness, up to four times a day",
    1,
    "inhaler",
    56,
)
PARACETAMOL = Medicine(
    Concept("322236009", "Paracetamol 500mg tablets", DMD),
    "One or two tablets up to four times a day when required",
    100,
    supply_days=14,
)
# A short course: the GP's acute prescriptions. Sent as text: no dm+d code here we are certain of.
ACUTE_COURSES: tuple[tuple[str, str, int, str], ...] = (
    # (medicine, dosage, quantity, unit)
    ("Amoxicillin 500mg capsules", "One capsule three times a day for five days", 15, "capsule"),
    (
        "Nitrofurantoin 100mg modified-release capsules",
        "One capsule twice a day for three days",
        6,
        "capsule",
    ),
    ("Prednisolone 5mg tablets", "Six tablets once a day in the morning for five days", 30, "tablet"),
)

# Groups steer which partners a patient plausibly sees: cardiac → Royal Papworth, mental → CPFT, msk → community
# physiotherapy, frailty → social care.
PROBLEMS: tuple[Problem, ...] = (
    Problem("t2dm", Concept("44054006", "Type 2 diabetes mellitus"), 35, 0.10, "metabolic", METFORMIN),
    Problem("hypertension", Concept("38341003", "Hypertension"), 35, 0.20, "cardiac", AMLODIPINE),
    Problem("asthma", Concept("195967001", "Asthma"), 5, 0.09, "respiratory", SALBUTAMOL),
    Problem(
        "copd",
        Concept("13645005", "Chronic obstructive pulmonary disease"),
        45,
        0.05,
        "respiratory",
        SALBUTAMOL,
    ),
    Problem("af", Concept("49436004", "Atrial fibrillation"), 55, 0.05, "cardiac"),
    Problem("heart-failure", Concept("84114007", "Heart failure"), 60, 0.03, "cardiac", RAMIPRIL),
    Problem("chd", Concept("53741008", "Coronary arteriosclerosis"), 50, 0.05, "cardiac", RAMIPRIL),
    Problem("osteoarthritis", Concept("396275006", "Osteoarthritis"), 45, 0.10, "msk", PARACETAMOL),
    Problem("ckd", Concept("709044004", "Chronic kidney disease"), 55, 0.04, "metabolic"),
    Problem("hypothyroidism", Concept("40930008", "Hypothyroidism"), 25, 0.04, "metabolic"),
    Problem("depression", Concept("35489007", "Depressive disorder"), 16, 0.09, "mental"),
    Problem("anxiety", Concept("197480006", "Anxiety disorder"), 14, 0.07, "mental"),
    Problem("schizophrenia", Concept("58214004", "Schizophrenia"), 18, 0.01, "mental"),
    Problem("bipolar", Concept("13746004", "Bipolar disorder"), 18, 0.01, "mental"),
    Problem("dementia", Concept("52448006", "Dementia"), 70, 0.05, "frailty"),
    Problem("stroke", Concept("230690007", "Cerebrovascular accident"), 55, 0.03, "cardiac"),
    Problem("epilepsy", Concept("84757009", "Epilepsy"), 5, 0.01, "neuro"),
    Problem("migraine", Concept("37796009", "Migraine"), 12, 0.04, "neuro", PARACETAMOL),
    Problem("osteoporosis", Concept("64859006", "Osteoporosis"), 60, 0.04, "frailty"),
    Problem("gord", Concept("235595009", "Gastro-oesophageal reflux disease"), 25, 0.05, "other"),
)
PROBLEMS_BY_KEY = {problem.key: problem for problem in PROBLEMS}

# In the national sexually-transmitted-disease exclusion set: the record shows it only to those entitled.
CHLAMYDIAL_INFECTION = Concept("105629000", "Chlamydial infection")
CHLAMYDIA_TRACHOMATIS_INFECTION = Concept("240589008", "Chlamydia trachomatis infection")
HIV_INFECTION = Concept("86406008", "Human immunodeficiency virus infection")

ALLERGIES: tuple[tuple[Concept, str, Concept], ...] = (
    # (allergy, category, usual reaction)
    (Concept("91936005", "Allergy to penicillin"), "medication", Concept("271807003", "Eruption of skin")),
    (Concept("91935009", "Allergy to peanut"), "food", Concept("39579001", "Anaphylaxis")),
    (Concept("300916003", "Latex allergy"), "environment", Concept("126485001", "Urticaria")),
    (Concept("91930004", "Allergy to eggs"), "food", Concept("422587007", "Nausea")),
)
NO_KNOWN_ALLERGY = Concept("716186003", "No known allergy")

INFLUENZA_VACCINE = Concept("836377006", "Influenza virus antigen-containing vaccine product")
PNEUMOCOCCAL_VACCINE = Concept("836398006", "Streptococcus pneumoniae antigen-containing vaccine product")
COVID_VACCINE = Concept("1119349007", "SARS-CoV-2 mRNA vaccine")

HBA1C = Concept("59261-8", "Haemoglobin A1c (IFCC)", LOINC)
CHOLESTEROL = Concept("2093-3", "Serum cholesterol", LOINC)
EGFR = Concept("33914-3", "Estimated glomerular filtration rate", LOINC)
CREATININE = Concept("2160-0", "Serum creatinine", LOINC)
HAEMOGLOBIN = Concept("718-7", "Haemoglobin", LOINC)
WHITE_CELLS = Concept("6690-2", "White cell count", LOINC)
PLATELETS = Concept("777-3", "Platelet count", LOINC)
SODIUM = Concept("2951-2", "Serum sodium", LOINC)
POTASSIUM = Concept("2823-3", "Serum potassium", LOINC)
CRP = Concept("1988-5", "C-reactive protein", LOINC)
FULL_BLOOD_COUNT = Concept("58410-2", "Full blood count", LOINC)
UREA = Concept("22664-7", "Serum urea", LOINC)

HEART_RATE = Concept("8867-4", "Heart rate", LOINC)
RESPIRATORY_RATE = Concept("9279-1", "Respiratory rate", LOINC)
OXYGEN_SATURATION = Concept("59408-5", "Oxygen saturation by pulse oximetry", LOINC)
BODY_TEMPERATURE = Concept("8310-5", "Body temperature", LOINC)
BLOOD_PRESSURE = Concept("85354-9", "Blood pressure", LOINC)
SYSTOLIC = Concept("8480-6", "Systolic blood pressure", LOINC)
DIASTOLIC = Concept("8462-4", "Diastolic blood pressure", LOINC)

SMOKING_STATUS = Concept("72166-2", "Tobacco smoking status", LOINC)
NEVER_SMOKED = Concept("266919005", "Never smoked tobacco")
EX_SMOKER = Concept("8517006", "Ex-smoker")
SMOKER = Concept("77176002", "Smoker")
PHQ9_SCORE = Concept("44261-6", "PHQ-9 total score", LOINC)
LIVES_ALONE = Concept("105529008", "Lives alone")

EMERGENCY_VISIT = Concept("4525004", "Emergency department patient visit")
HOSPITAL_ADMISSION = Concept("32485007", "Hospital admission")
HOME_VISIT = Concept("439708006", "Home visit")
DISCHARGE_SUMMARY = Concept("373942005", "Discharge summary")
PATIENT_REFERRAL = Concept("3457005", "Patient referral")
REFERRAL_TO_SERVICE = Concept("306206005", "Referral to service")

# Why people turn up in an emergency department or call an ambulance.
PRESENTATIONS: tuple[Concept, ...] = (
    Concept("29857009", "Chest pain"),
    Concept("1912002", "Fall"),
    Concept("267036007", "Dyspnoea"),
    Concept("68566005", "Urinary tract infection"),
    Concept("128045006", "Cellulitis"),
    Concept("385093006", "Community acquired pneumonia"),
)
ADMISSION_REASONS: tuple[Concept, ...] = (
    Concept("385093006", "Community acquired pneumonia"),
    Concept("5913000", "Fracture of neck of femur"),
    Concept("195951007", "Acute exacerbation of chronic obstructive pulmonary disease"),
    Concept("22298006", "Myocardial infarction"),
    Concept("68566005", "Urinary tract infection"),
)
# Procedures an acute hospital might do on an admission, keyed by the admission reason they follow.
ADMISSION_PROCEDURES: dict[str, Concept] = {
    "5913000": Concept("52734007", "Total hip replacement"),
    "22298006": Concept("415070008", "Percutaneous coronary intervention"),
    "385093006": Concept("399208008", "Plain chest X-ray"),
    "195951007": Concept("399208008", "Plain chest X-ray"),
}
ELECTIVE_PROCEDURES: tuple[Concept, ...] = (
    Concept("45595009", "Laparoscopic cholecystectomy"),
    Concept("73761001", "Colonoscopy"),
    Concept("609588000", "Total knee replacement"),
    Concept("80146002", "Appendicectomy"),
)
CARDIAC_PROCEDURES: tuple[Concept, ...] = (
    Concept("40701008", "Echocardiography"),
    Concept("29303009", "Electrocardiographic procedure"),
    Concept("415070008", "Percutaneous coronary intervention"),
    Concept("232717009", "Coronary artery bypass graft"),
)
