"""The letter that tells a patient the outcome of their objection, as a PDF.

What always holds:
- it comes from the shared care record team of the integrated care board, names the case by its reference and is
  dated the day it is made;
- it says in plain words what was decided: for an upheld objection what will no longer be shared; for a partly
  upheld one what will and what will not; for one not upheld the reason, without codes; for a case no record
  matched, that nothing was changed and how to give us more details;
- it says what the outcome means, how to withdraw the objection and how to complain, to us and then to the ICO;
- names and addresses are printed as typed, accents and all: the text is set in DejaVu Sans, a Unicode TrueType
  font (Debian's `fonts-dejavu-core`), so the PDF's text reads back as written. Without the font no letter is made
  (`LetterFontMissing`), rather than one with the patient's name misspelt.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from django.utils import timezone
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from consent.models import Objection
from records.models import Organisation
from records.sections import Section

# Where Debian's fonts-dejavu-core package puts the font.
FONT_DIRECTORY = Path("/usr/share/fonts/truetype/dejavu")
LETTER_FONT_FAMILY = "DejaVu"
TEAM = "Shared Care Record team"
ICO_CONTACT = "ico.org.uk/make-a-complaint, or by phone on 0303 123 1113"

Status = Objection.Status

REFUSAL_IN_PLAIN_WORDS: dict[str, str] = {
    Objection.RefusalReason.SAFEGUARDING: (
        "the staff caring for you need to be able to see this information to keep you, or someone else, "
        "safe from harm (safeguarding)"
    ),
    Objection.RefusalReason.PUBLIC_INTEREST: (
        "there is an overriding public interest in sharing this information, for example to prevent serious "
        "harm to other people"
    ),
    Objection.RefusalReason.CARE_NOT_OTHERWISE: (
        "the care you need cannot be given safely unless the staff caring for you can see this information"
    ),
}


class LetterFontMissing(RuntimeError):
    """The Unicode font the letters are set in is not installed."""


@dataclass
class _Letter:
    """The letter's words: paragraphs, each a heading or a body text, with bullet lists."""

    blocks: list[tuple[str, str]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: Iterable[str]) -> None:
        for item in items:
            self.blocks.append(("bullet", item))


def _partner_names(codes: Iterable[str]) -> list[str]:
    codes = list(codes)
    names = dict(Organisation.objects.filter(ods_code__in=codes).values_list("ods_code", "name"))
    return [names.get(code, code) for code in sorted(codes)]


def _section_names(keys: Iterable[str]) -> str:
    wanted = set(keys)
    # In the record page's order, so the letter lists them as the patient would see them.
    return ", ".join(section.label for section in Section if section.value in wanted)


def _day(moment: date) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _no_longer_shared(
    whole_record: bool, sections: Iterable[str], from_partners: Iterable[str], to_partners: Iterable[str]
) -> list[str]:
    if whole_record:
        return ["None of your record will be shown to health and care staff through the shared care record."]
    items = []
    if sections := list(sections):
        items.append(f"These parts of your record will no longer be shown: {_section_names(sections)}.")
    for name in _partner_names(from_partners):
        items.append(f"Information from {name} will no longer be shown to staff of other organisations.")
    for name in _partner_names(to_partners):
        items.append(f"Staff at {name} will no longer be able to see your shared care record.")
    return items


def _still_shared(objection: Objection) -> list[str]:
    """What was asked for and not upheld, in plain words."""
    if objection.scope_whole_record:
        return ["The rest of your record will still be shown to the health and care staff caring for you."]
    items = []
    if sections := set(objection.scope_sections) - set(objection.upheld_sections):
        items.append(f"These parts of your record will still be shown: {_section_names(sections)}.")
    for name in _partner_names(set(objection.scope_from_partners) - set(objection.upheld_from_partners)):
        items.append(f"Information from {name} will still be shown to the staff caring for you.")
    for name in _partner_names(set(objection.scope_to_partners) - set(objection.upheld_to_partners)):
        items.append(f"Staff at {name} caring for you will still be able to see your shared care record.")
    return items


def _reason(objection: Objection) -> str:
    reason = REFUSAL_IN_PLAIN_WORDS.get(objection.refusal_reason)
    return f"This is because {reason}." if reason else ""


def _what_upholding_means(letter: _Letter, objection: Objection) -> None:
    letter.heading("What this means for you")
    letter.para(
        "Your GP practice, hospital and other services still keep their own records about you and use them to "
        "care for you. This decision changes only what other organisations can see through the shared care record."
    )
    letter.para(
        "Staff caring for you will see a note that some information is not shown, without saying what it is. "
        "They may ask you about it, and it may sometimes take them longer to get the information they need."
    )
    if objection.break_glass_may_override:
        letter.para(
            "In an emergency, when it is needed to protect you or someone else from serious harm, staff may "
            "still see this information. If that happens it is recorded and checked by our information "
            "governance team."
        )


def _outcome(letter: _Letter, objection: Objection) -> None:
    upheld = _no_longer_shared(
        objection.upheld_whole_record,
        objection.upheld_sections,
        objection.upheld_from_partners,
        objection.upheld_to_partners,
    )
    if objection.status == Status.UPHELD:
        letter.heading("We have agreed to your objection")
        letter.para("We have considered your objection, with advice from a clinician. From now on:")
        letter.bullets(upheld)
        _what_upholding_means(letter, objection)
    elif objection.status == Status.PARTLY_UPHELD:
        letter.heading("We have agreed to part of your objection")
        letter.para("We have considered your objection, with advice from a clinician. From now on:")
        letter.bullets(upheld)
        letter.para("We have not been able to agree to the rest of your objection:")
        letter.bullets(_still_shared(objection))
        if reason := _reason(objection):
            letter.para(reason)
        _what_upholding_means(letter, objection)
    elif objection.status == Status.NOT_UPHELD:
        letter.heading("We have not been able to agree to your objection")
        letter.para(
            "We have considered your objection carefully, with advice from a clinician, and we have not been "
            f"able to agree to it. {_reason(objection)}"
        )
        letter.heading("What this means for you")
        letter.para(
            "Your record will go on being shared as before, and only with the health and care staff caring for "
            "you. Every time someone looks at it, this is recorded."
        )
    elif objection.status == Status.NOT_FOUND:
        letter.heading("We could not find your record")
        letter.para(
            "We could not find a record that matches the details you gave us, so nothing has been changed. If "
            "you would like us to look again, please reply to this letter with your NHS number, your date of "
            "birth and your address, or ask your GP practice to contact us."
        )
    else:
        raise ValueError(f"Case {objection.reference} has no outcome to tell the patient yet.")


def _addressee(objection: Objection) -> str:
    if objection.on_behalf != Objection.OnBehalf.SELF and objection.requester_name:
        return objection.requester_name
    return f"{objection.given_name} {objection.family_name}"


def _letter(objection: Objection, today: date) -> tuple[list[str], _Letter]:
    icb = Organisation.objects.filter(kind=Organisation.Kind.ICB).order_by("pk").first()
    sender = [TEAM, icb.name if icb else "Integrated care board"]
    address = [_addressee(objection)]
    if objection.contact_by == Objection.ContactBy.POST:
        address += [line.strip() for line in objection.address.replace("\n", ",").split(",") if line.strip()]
        address += [objection.postcode] if objection.postcode else []
    letter = _Letter()
    letter.para(f"Our reference: {objection.reference}")
    letter.para(f"Dear {_addressee(objection)},")
    subject = "your objection to sharing your shared care record"
    if objection.on_behalf != Objection.OnBehalf.SELF:
        subject = (
            f"the objection you made for {objection.given_name} {objection.family_name} to sharing their "
            "shared care record"
        )
    letter.para(
        f"Thank you for {subject}, which we received on {_day(timezone.localtime(objection.received_at))}."
    )
    _outcome(letter, objection)
    letter.heading("If you change your mind")
    letter.para(
        "You can withdraw your objection at any time, by replying to this letter or by telling your GP practice. "
        f"Please quote your reference, {objection.reference}. You do not have to give a reason."
    )
    letter.heading("If you are unhappy with our decision")
    letter.para(
        "Please tell us first, by replying to this letter, and we will look at it again. If you are still "
        "unhappy, you have the right to complain to the Information Commissioner's Office (ICO), the UK's "
        f"independent regulator for data protection: {ICO_CONTACT}."
    )
    letter.para("Yours sincerely,")
    letter.para(f"{TEAM}, {sender[1]}")
    return [*sender, "", _day(today), "", *address], letter


def letter_font_files() -> dict[str, Path]:
    files = {"": FONT_DIRECTORY / "DejaVuSans.ttf", "B": FONT_DIRECTORY / "DejaVuSans-Bold.ttf"}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise LetterFontMissing(
            f"Letters need the DejaVu Sans font (Debian package fonts-dejavu-core): {missing}"
        )
    return files


def objection_letter_pdf(objection: Objection, *, today: date | None = None) -> bytes:
    """The letter telling the patient (or whoever asked for them) the outcome of `objection`, as PDF bytes.

    Raises `ValueError` for a case with no outcome to tell yet (still open, or withdrawn).
    """
    if objection.status not in (Status.UPHELD, Status.PARTLY_UPHELD, Status.NOT_UPHELD, Status.NOT_FOUND):
        raise ValueError(f"Case {objection.reference} has no outcome to tell the patient yet.")
    header, letter = _letter(objection, today or timezone.localdate())
    pdf = FPDF(format="A4")
    for style, path in letter_font_files().items():
        pdf.add_font(LETTER_FONT_FAMILY, style, str(path))
    pdf.set_title(f"Your objection {objection.reference}")
    pdf.set_author(TEAM)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_font(LETTER_FONT_FAMILY, size=11)
    for line in header:
        pdf.cell(0, 5.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    for kind, text in letter.blocks:
        if kind == "heading":
            pdf.ln(2)
            pdf.set_font(LETTER_FONT_FAMILY, "B", 12)
            pdf.multi_cell(0, 6.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font(LETTER_FONT_FAMILY, size=11)
        elif kind == "bullet":
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, 5.5, f"• {text}", align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            pdf.multi_cell(0, 5.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)
    return bytes(pdf.output())
