"""The PRSB Core Information Standard headings the record page is organised by.

Keys follow the NHS RecordStandardHeadings code system (https://fhir.nhs.uk/CodeSystem/RecordStandardHeadings),
which partners may put in `meta.tag` to say which heading a resource belongs under.
"""

from django.db import models

HEADINGS_SYSTEM = "https://fhir.nhs.uk/CodeSystem/RecordStandardHeadings"


class Section(models.TextChoices):
    DEMOGRAPHICS = "person-demographics", "Person demographics"
    GP_PRACTICE = "gp-practice", "GP practice"
    ALERTS = "alerts", "Alerts and safety"
    LEGAL = "legal-information", "Legal information"
    SAFEGUARDING = "safeguarding", "Safeguarding"
    PROBLEMS = "problems-and-issues", "Problems and diagnoses"
    ALLERGIES = "allergies-and-adverse-reactions", "Allergies and adverse reactions"
    MEDICATIONS = "medications-and-medical-devices", "Medications"
    PROCEDURES = "procedures", "Procedures"
    INVESTIGATIONS = "investigations-results", "Investigation results"
    VACCINATIONS = "vaccinations", "Vaccinations"
    ENCOUNTERS = "encounters", "Encounters"
    PLANS = "care-and-support-plans", "Care and support plans"
    REFERRALS = "referrals", "Referrals"
    ASSESSMENTS = "assessments", "Assessments"
    SOCIAL_CONTEXT = "social-context", "Social context"
    DOCUMENTS = "documents", "Documents"
    PROFESSIONAL_CONTACTS = "professional-contacts", "Professional contacts"


# Page order: demographics and the GP practice first, then the headings in the order the standard lists them.
SECTION_ORDER: tuple[Section, ...] = tuple(Section)

# Held on the Patient row, not as record entries; always shown to anyone allowed into the record.
DEMOGRAPHIC_SECTIONS = frozenset({Section.DEMOGRAPHICS, Section.GP_PRACTICE})
CLINICAL_SECTIONS = frozenset(set(Section) - DEMOGRAPHIC_SECTIONS)
