"""The public forms: a patient's objection to their record being shared, and the question where it stands.

They check the shape of what a person typed and nothing else: no patient is looked up, so no answer can say
whether one exists. Text is kept as typed (HTML and all) for the templates to escape.
"""

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent.models import Objection
from records import nhs_number
from records.public.inputs import (
    ADDRESS_LINE_MAX,
    EMAIL_MAX,
    NAME_MAX,
    NHS_NUMBER_MAX,
    PHONE_MAX,
    POSTAL_ADDRESS_MAX,
    POSTCODE_MAX,
    REASON_MAX,
    REFERENCE_MAX,
    REQUESTER_NAME_MAX,
    TOWN_MAX,
    DateOfBirthMixin,
    Option,
    choice_field,
    choices_field,
    partner_options,
    phone_check,
    postcode_normalise,
    reference_normalise,
    text_field,
)
from records.public.words import (
    CONTACT_WORDS,
    FROM_PARTNERS,
    ON_BEHALF_WORDS,
    SCOPE_WORDS,
    SECTION_WORDS,
    SECTIONS,
    TO_PARTNERS,
    WHOLE,
)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the check-your-answers page: what was asked, the answer in lines, and where to change it."""

    key: str
    lines: list[str]
    anchor: str


class ObjectionForm(DateOfBirthMixin, forms.Form):
    """What a patient, or someone for them, says when objecting to their record being shared.

    The record is found by the NHS number or, failing that, the address and postcode (both are kept when both are
    given). Answers that depend on another (the contact detail for the way chosen, the requester's name when asking
    for someone else, the choices under each part of the scope) are read only under it; the check-your-answers page
    shows exactly what will be sent.
    """

    on_behalf = choice_field(
        "Who are you asking for?", ON_BEHALF_WORDS, missing="Select who you are asking for"
    )
    requester_name = text_field(
        "Your full name",
        REQUESTER_NAME_MAX,
        f"Your name must be {REQUESTER_NAME_MAX} characters or fewer",
        help_text="Only if you are asking for someone else",
    )
    given_name = text_field("First name", NAME_MAX, f"First name must be {NAME_MAX} characters or fewer")
    family_name = text_field("Last name", NAME_MAX, f"Last name must be {NAME_MAX} characters or fewer")
    nhs_number = text_field(
        "NHS number (optional)",
        NHS_NUMBER_MAX,
        "An NHS number has 10 digits",
        help_text="This is a 10 digit number, like 999 123 4567. It is on letters from the NHS, on prescriptions "
        "and in the NHS App. If you do not know it, give the address instead.",
    )
    address_line_1 = text_field(
        "Address line 1", ADDRESS_LINE_MAX, f"Address line 1 must be {ADDRESS_LINE_MAX} characters or fewer"
    )
    address_line_2 = text_field(
        "Address line 2 (optional)",
        ADDRESS_LINE_MAX,
        f"Address line 2 must be {ADDRESS_LINE_MAX} characters or fewer",
    )
    address_town = text_field(
        "Town or city", TOWN_MAX, f"Town or city must be {TOWN_MAX} characters or fewer"
    )
    postcode = text_field("Postcode", POSTCODE_MAX, "Enter a real postcode, like CB2 0QQ")
    scope = choices_field(
        "What do you want to stop being shared?",
        list(SCOPE_WORDS.items()),
        unknown="Select what you want to stop being shared from the list",
    )
    scope_sections = choices_field(
        "Which kinds of information?",
        [(code, words[0]) for code, words in SECTION_WORDS.items()],
        unknown="Select kinds of information from the list",
    )
    scope_from_partners = choices_field(
        "Information from which organisations?", [], unknown="Select organisations from the list"
    )
    scope_to_partners = choices_field(
        "Which organisations should not see the record?", [], unknown="Select organisations from the list"
    )
    reason_text = text_field(
        "Why do you object? (optional)",
        REASON_MAX,
        f"Your reason must be {REASON_MAX:,} characters or fewer",
        help_text="This helps us consider your request. You do not have to tell us.",
        strip=True,
    )
    contact_by = choice_field(
        "How should we contact you about this request?",
        CONTACT_WORDS,
        missing="Select how we should contact you",
    )
    contact_email = text_field(
        "Email address", EMAIL_MAX, f"Email address must be {EMAIL_MAX} characters or fewer"
    )
    contact_phone = text_field(
        "Phone number",
        PHONE_MAX,
        "Enter a phone number, like 01632 960 001, 07700 900 982 or +44 808 157 0192",
        help_text="For international numbers include the country code",
    )
    contact_address = text_field(
        "Address to write to",
        POSTAL_ADDRESS_MAX,
        f"The address must be {POSTAL_ADDRESS_MAX} characters or fewer",
        help_text="House number or name, street and town",
    )
    contact_postcode = text_field("Postcode", POSTCODE_MAX, "Enter a real postcode, like CB2 0QQ")
    # A trap for robots: hidden from people and from assistive technology, so only a form-filling program fills it.
    website = text_field("Leave this field empty", 200, "Leave this field empty")

    field_order = [
        "on_behalf",
        "requester_name",
        "given_name",
        "family_name",
        "birth_day",
        "birth_month",
        "birth_year",
        "nhs_number",
        "address_line_1",
        "address_line_2",
        "address_town",
        "postcode",
        "scope",
        "scope_sections",
        "scope_from_partners",
        "scope_to_partners",
        "reason_text",
        "contact_by",
        "contact_email",
        "contact_phone",
        "contact_address",
        "contact_postcode",
    ]
    # Where the error summary sends a person for each field: a group's first option.
    _GROUP_FIRST = {
        "on_behalf": Objection.OnBehalf.SELF.value,
        "scope": SECTIONS,
        "contact_by": Objection.ContactBy.EMAIL.value,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partners = partner_options()
        partner_choices = [(partner.value, partner.label) for partner in self.partners]
        for name in ("scope_from_partners", "scope_to_partners"):
            field = self.fields[name]
            if not isinstance(field, forms.MultipleChoiceField):
                raise RuntimeError("invariant: isinstance(field, forms.MultipleChoiceField)")
            field.choices = partner_choices

    # What the templates read.

    @property
    def section_options(self) -> list[Option]:
        return [Option(code, label, hint) for code, (label, hint) in SECTION_WORDS.items()]

    @property
    def words(self) -> dict[str, dict[str, str]]:
        return {
            "on_behalf": ON_BEHALF_WORDS,
            "scope": SCOPE_WORDS,
            "contact_by": CONTACT_WORDS,
        }

    def anchor(self, name: str) -> str:
        first = self._GROUP_FIRST.get(name)
        if first is not None:
            return f"id_{name}-{first}"
        options = {
            "scope_sections": self.section_options,
            "scope_from_partners": self.partners,
            "scope_to_partners": self.partners,
        }.get(name)
        if options:
            return f"id_{name}-{options[0].value}"
        return f"id_{name}"

    @property
    def error_links(self) -> list[tuple[str, str]]:
        """The error summary: each message with the id of the box it is about ("" for the form as a whole)."""
        links = [("", str(message)) for message in self.non_field_errors()]
        for name in self.fields:
            for message in self.errors.get(name, []):
                links.append((self.anchor(name), str(message)))
        return links

    # Checks.

    def clean_nhs_number(self) -> str:
        return str(self.cleaned_data.get("nhs_number") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("website"):
            raise ValidationError(
                "We could not accept this form. If a program filled it in for you, please fill it in yourself.",
                code="honeypot",
            )
        data["birth_date"] = self.birth_date_clean()
        self._who_clean(data)
        self._identity_clean(data)
        self._scope_clean(data)
        self._contact_clean(data)
        return data

    def _required(self, data: dict[str, Any], name: str, message: str) -> None:
        if name not in self.errors and not data.get(name):
            self.add_error(name, message)

    def _who_clean(self, data: dict[str, Any]) -> None:
        self._required(data, "on_behalf", "Select who you are asking for")
        if data.get("on_behalf") not in ("", None, Objection.OnBehalf.SELF):
            self._required(data, "requester_name", "Enter your full name")
        self._required(data, "given_name", "Enter their first name")
        self._required(data, "family_name", "Enter their last name")

    def _identity_clean(self, data: dict[str, Any]) -> None:
        """An NHS number, or failing that an address and postcode, to find the record by; both may be given."""
        if data.get("nhs_number") and "nhs_number" not in self.errors:
            problem = nhs_number.explain_invalid(data["nhs_number"])
            if problem:
                self.add_error("nhs_number", problem)
            else:
                data["nhs_number"] = nhs_number.normalise(data["nhs_number"])
        if not data.get("nhs_number") and "nhs_number" not in self.errors:
            self._required(data, "address_line_1", "Enter the first line of the address, or the NHS number")
            self._required(data, "address_town", "Enter the town or city, or the NHS number")
            self._postcode_clean(data, "postcode", missing="Enter the postcode, or the NHS number")
        elif data.get("postcode"):
            self._postcode_clean(data, "postcode", missing="")

    def _postcode_clean(
        self, data: dict[str, Any], name: str, *, missing: str = "Enter the postcode"
    ) -> None:
        if name in self.errors:
            return
        if not data.get(name):
            self.add_error(name, missing)
            return
        try:
            data[name] = postcode_normalise(data[name])
        except ValidationError as problem:
            self.add_error(name, problem)

    def _scope_clean(self, data: dict[str, Any]) -> None:
        if "scope" in self.errors:
            return
        chosen = set(data.get("scope") or [])
        if not chosen:
            self.add_error("scope", "Select what you want to stop being shared")
            return
        if WHOLE in chosen and len(chosen) > 1:
            self.add_error(
                "scope", "Select the whole record, or the parts you want to stop being shared, not both"
            )
            return
        missing = {
            SECTIONS: ("scope_sections", "Select the kinds of information you want to stop being shared"),
            FROM_PARTNERS: (
                "scope_from_partners",
                "Select the organisations whose information you want to stop being shared",
            ),
            TO_PARTNERS: ("scope_to_partners", "Select the organisations you want to stop seeing the record"),
        }
        for part, (name, message) in missing.items():
            if part in chosen:
                self._required(data, name, message)

    def _contact_clean(self, data: dict[str, Any]) -> None:
        self._required(data, "contact_by", "Select how we should contact you")
        way = data.get("contact_by")
        if way == Objection.ContactBy.EMAIL and "contact_email" not in self.errors:
            if not data.get("contact_email"):
                self.add_error("contact_email", "Enter your email address")
            else:
                try:
                    validate_email(data["contact_email"])
                except ValidationError:
                    self.add_error(
                        "contact_email", "Enter an email address in the correct format, like name@example.com"
                    )
        if way == Objection.ContactBy.PHONE and "contact_phone" not in self.errors:
            if not data.get("contact_phone"):
                self.add_error("contact_phone", "Enter your phone number")
            else:
                try:
                    data["contact_phone"] = phone_check(data["contact_phone"])
                except ValidationError as problem:
                    self.add_error("contact_phone", problem)
        if way == Objection.ContactBy.POST:
            self._required(data, "contact_address", "Enter the address to write to")
            self._postcode_clean(data, "contact_postcode")

    # What is sent.

    def objection_fields(self) -> dict[str, Any]:
        """The valid form as `consent.objections.objection_receive` takes it: only what the answers chose."""
        data = self.cleaned_data
        scope = set(data["scope"])
        way = data["contact_by"]
        on_behalf = data["on_behalf"]
        return {
            "given_name": data["given_name"],
            "family_name": data["family_name"],
            "birth_date": data["birth_date"],
            "nhs_number": data["nhs_number"],
            "address": self._joined(data["address_line_1"], data["address_line_2"], data["address_town"]),
            "postcode": data["postcode"],
            "contact_by": way,
            "contact_detail": self._contact_detail(data, way),
            "on_behalf": on_behalf,
            "requester_name": "" if on_behalf == Objection.OnBehalf.SELF else data["requester_name"],
            "reason_text": data["reason_text"],
            "scope_whole_record": WHOLE in scope,
            "scope_sections": data["scope_sections"] if SECTIONS in scope else [],
            "scope_from_partners": data["scope_from_partners"] if FROM_PARTNERS in scope else [],
            "scope_to_partners": data["scope_to_partners"] if TO_PARTNERS in scope else [],
        }

    @staticmethod
    def _joined(*parts: str) -> str:
        return ", ".join(" ".join(part.split()) for part in parts if part and part.strip())

    def _contact_detail(self, data: dict[str, Any], way: str) -> str:
        if way == Objection.ContactBy.EMAIL:
            return str(data["contact_email"])
        if way == Objection.ContactBy.PHONE:
            return str(data["contact_phone"])
        return self._joined(*data["contact_address"].splitlines(), data["contact_postcode"])

    def summary(self) -> list[SummaryRow]:
        """The valid form's answers for the check-your-answers page, in the order they were asked."""
        sent = self.objection_fields()
        names = {partner.value: partner.label for partner in self.partners}
        rows = [SummaryRow("Asking for", [ON_BEHALF_WORDS[sent["on_behalf"]]], self.anchor("on_behalf"))]
        if sent["requester_name"]:
            rows.append(SummaryRow("Your name", [sent["requester_name"]], self.anchor("requester_name")))
        rows += [
            SummaryRow("Name", [f"{sent['given_name']} {sent['family_name']}"], self.anchor("given_name")),
            SummaryRow(
                "Date of birth",
                [f"{sent['birth_date'].day} {sent['birth_date']:%B %Y}"],
                self.anchor("birth_day"),
            ),
        ]
        number = nhs_number.display(sent["nhs_number"]) if sent["nhs_number"] else "Not known"
        rows.append(SummaryRow("NHS number", [number], self.anchor("nhs_number")))
        if sent["address"] or sent["postcode"]:
            where = [line for line in (sent["address"], sent["postcode"]) if line]
            rows.append(SummaryRow("Address", where, self.anchor("address_line_1")))
        rows.append(SummaryRow("Stop sharing", self._scope_lines(sent, names), self.anchor("scope")))
        rows.append(SummaryRow("Reason", [sent["reason_text"] or "Not given"], self.anchor("reason_text")))
        rows.append(
            SummaryRow(
                "Contact by",
                [CONTACT_WORDS[sent["contact_by"]], sent["contact_detail"]],
                self.anchor("contact_by"),
            )
        )
        return rows

    @staticmethod
    def _scope_lines(sent: dict[str, Any], names: dict[str, str]) -> list[str]:
        if sent["scope_whole_record"]:
            return ["The whole record"]
        lines = []
        if sent["scope_sections"]:
            chosen = [SECTION_WORDS[code][0] for code in SECTION_WORDS if code in sent["scope_sections"]]
            lines.append("These kinds of information: " + ", ".join(chosen))
        if sent["scope_from_partners"]:
            chosen = [names[code] for code in names if code in sent["scope_from_partners"]]
            lines.append("Information from: " + ", ".join(chosen))
        if sent["scope_to_partners"]:
            chosen = [names[code] for code in names if code in sent["scope_to_partners"]]
            lines.append("Not to be seen by staff at: " + ", ".join(chosen))
        return lines


class StatusForm(DateOfBirthMixin, forms.Form):
    """A reference and the patient's date of birth: both must match one request, or the answer is one answer."""

    reference = text_field(
        "Your reference",
        REFERENCE_MAX,
        "Enter the reference you were given, like OB-7QK2M9ZD",
        help_text="You were given it when you sent your request, like OB-7QK2M9ZD",
    )

    field_order = ["reference", "birth_day", "birth_month", "birth_year"]

    def clean_reference(self) -> str:
        return reference_normalise(str(self.cleaned_data.get("reference") or ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["birth_date"] = self.birth_date_clean()
        return data

    @classmethod
    def not_found(cls, message: str) -> "StatusForm":
        """The form emptied, with one message: nothing typed is echoed, so a wrong reference and a wrong date of
        birth get the same page, not just the same words."""
        form = cls({})
        form.errors.clear()
        form.add_error(None, message)
        return form

    @property
    def error_links(self) -> list[tuple[str, str]]:
        links = [("id_reference", str(message)) for message in self.non_field_errors()]
        for name in self.fields:
            for message in self.errors.get(name, []):
                links.append((f"id_{name}", str(message)))
        return links
