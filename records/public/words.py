"""The public pages' words for what the form offers: plain English a patient uses, never the codes behind them."""

from consent.models import Objection
from records.sections import Section

# The kinds of information in a record, in words a patient uses, with an example of each; never the headings' codes.
# Demographics and the GP practice are how staff know whose record it is, so they are not offered.
SECTION_WORDS: dict[str, tuple[str, str]] = {
    Section.ALERTS: ("Alerts and safety warnings", "Warnings for staff, such as a risk of falls"),
    Section.LEGAL: (
        "Legal information",
        "Such as a lasting power of attorney, an advance decision to refuse treatment or Mental Health Act status",
    ),
    Section.SAFEGUARDING: ("Safeguarding", "Concerns about keeping you or others safe from harm"),
    Section.PROBLEMS: ("Health conditions and diagnoses", "Illnesses and conditions, now and in the past"),
    Section.ALLERGIES: ("Allergies and reactions", "Allergies and bad reactions to medicines or foods"),
    Section.MEDICATIONS: ("Medicines", "Medicines you take or have taken, and medical devices"),
    Section.PROCEDURES: ("Operations and procedures", "Surgery and other treatments"),
    Section.INVESTIGATIONS: ("Test results", "Blood tests, scans and X-rays"),
    Section.VACCINATIONS: ("Vaccinations", "Vaccines you have had"),
    Section.ENCOUNTERS: ("Appointments and hospital stays", "Including visits to A&E"),
    Section.PLANS: ("Care and support plans", "Plans for your care agreed with you"),
    Section.REFERRALS: ("Referrals", "When one service asks another to see you"),
    Section.ASSESSMENTS: ("Assessments", "For example of your care needs or your mental health"),
    Section.SOCIAL_CONTEXT: (
        "Home and social circumstances",
        "Who you live with, your work, and whether you smoke or drink",
    ),
    Section.DOCUMENTS: ("Letters and documents", "Such as clinic letters and hospital discharge summaries"),
    Section.PROFESSIONAL_CONTACTS: (
        "People involved in your care",
        "Named staff, such as a care coordinator",
    ),
}

ON_BEHALF_WORDS: dict[str, str] = {
    Objection.OnBehalf.SELF: "Myself",
    Objection.OnBehalf.PARENT: "My child, as their parent or guardian",
    Objection.OnBehalf.LASTING_POWER_OF_ATTORNEY: "Someone I have lasting power of attorney for",
    Objection.OnBehalf.WITH_AUTHORITY: "Someone who has given me their authority to ask",
}
CONTACT_WORDS: dict[str, str] = {
    Objection.ContactBy.EMAIL: "Email",
    Objection.ContactBy.PHONE: "Phone",
    Objection.ContactBy.POST: "Post",
}
WHOLE, SECTIONS, FROM_PARTNERS, TO_PARTNERS = "whole", "sections", "from_partners", "to_partners"
SCOPE_WORDS: dict[str, str] = {
    SECTIONS: "Some kinds of information",
    FROM_PARTNERS: "Information from some organisations",
    TO_PARTNERS: "Some organisations seeing the record",
    WHOLE: "The whole record",
}
