"""Portal forms. They check the shape of the input only; whether a user may see a patient is for the door."""

from django import forms

from records import nhs_number

NOT_FOUND_MESSAGE = "No patient found with that NHS number, or you do not have a care relationship with them."


class PatientSearchForm(forms.Form):
    nhs_number = forms.CharField(
        label="NHS number",
        # Long enough for 10 digits with generous spacing; the real rule is in `clean_nhs_number`.
        max_length=20,
        help_text="10 digits. Spaces and hyphens are fine, for example 943 476 5919.",
        widget=forms.TextInput(
            attrs={
                # The browser must not remember NHS numbers typed on a shared clinical workstation.
                "autocomplete": "off",
                "inputmode": "numeric",
                "spellcheck": "false",
            }
        ),
        # An empty box is one more mistake `clean_nhs_number` explains, in the same words as the others.
        required=False,
    )

    def clean_nhs_number(self) -> str:
        value: str = self.cleaned_data.get("nhs_number") or ""
        problem = nhs_number.explain_invalid(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid_nhs_number")
        return nhs_number.normalise(value)

    def reject_as_not_found(self) -> None:
        """Show the form again, emptied, with one message that is the same for a missing and a hidden patient.

        The number is not echoed back, so the whole page is identical in both cases, not just the message.
        """
        self.data = {**self.data, "nhs_number": ""}
        self.add_error("nhs_number", NOT_FOUND_MESSAGE)
