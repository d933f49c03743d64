"""NHS number rules (DESIGN.md §9): ten digits, Modulus 11 check digit, stored bare, shown 3 3 4."""

import re

from django.core.exceptions import ValidationError

_SEPARATORS = re.compile(r"[\s-]+")
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise(value: str) -> str:
    """Remove spaces and hyphens; nothing else is forgiven."""
    return _SEPARATORS.sub("", value or "")


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when no digit can be valid (remainder 10)."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid(value: str) -> bool:
    number = normalise(value)
    if len(number) != 10 or not number.isascii() or not number.isdigit():
        return False
    if number == "0000000000":
        return False
    return check_digit(number[:9]) == int(number[9])


def explain_invalid(value: str) -> str | None:
    """A sentence saying what is wrong with the number for a person to read, or None when it is valid."""
    number = normalise(value)
    if not number:
        return "Enter an NHS number."
    if not number.isascii() or not number.isdigit():
        return "An NHS number has digits only (spaces and hyphens are allowed between them)."
    if len(number) != 10:
        return f"An NHS number has 10 digits; this has {len(number)}."
    if not is_valid(number):
        return (
            "This is not a valid NHS number: the check digit does not match. Please check it and try again."
        )
    return None


def validate_nhs_number(value: str) -> None:
    problem = explain_invalid(value)
    if problem:
        raise ValidationError(problem, code="invalid_nhs_number")


def display(value: str) -> str:
    """943 476 5919 style, for people to read."""
    number = normalise(value)
    if len(number) != 10:
        return number
    return f"{number[:3]} {number[3:6]} {number[6:]}"
