import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from records import nhs_number

VALID = ["9000000009", "9449306613", "9449305552", "9690937316", "9990000018", "9990000026"]
INVALID = ["9876544321", "9991234560", "9111111124", "0000000000"]


@pytest.mark.parametrize("number", VALID)
def test_published_test_numbers_are_valid(number):
    assert nhs_number.is_valid(number)
    assert nhs_number.explain_invalid(number) is None


@pytest.mark.parametrize("number", INVALID)
def test_published_invalid_numbers_are_refused(number):
    assert not nhs_number.is_valid(number)
    assert nhs_number.explain_invalid(number)


@pytest.mark.parametrize("typed", ["943 476 5919", "943-476-5919", " 9434765919 ", "943 476-5919"])
def test_spaces_and_hyphens_are_forgiven(typed):
    assert nhs_number.normalise(typed) == "9434765919"
    assert nhs_number.is_valid(typed)


@pytest.mark.parametrize("typed", ["943476591", "94347659199", "94347659I9", "９４３４７６５９１９", ""])  # noqa: RUF001 - full-width digits on purpose
def test_wrong_length_or_non_digits_are_refused_with_a_reason(typed):
    assert not nhs_number.is_valid(typed)
    assert nhs_number.explain_invalid(typed)


def test_display_groups_three_three_four():
    assert nhs_number.display("9434765919") == "943 476 5919"


def _reference_check(digits: str) -> bool:
    # The rule exactly as DESIGN.md §9 states it, written independently of the implementation.
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        return False
    return digits != "0000000000" and check == int(digits[9])


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_validity_matches_the_modulus_11_rule(digits):
    assert nhs_number.is_valid(digits) == _reference_check(digits)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_every_nine_digits_have_at_most_one_valid_check_digit(first_nine):
    valid = [d for d in "0123456789" if nhs_number.is_valid(first_nine + d)]
    expected = nhs_number.check_digit(first_nine)
    if expected is None or first_nine + str(expected) == "0000000000":
        assert valid == []
    else:
        assert valid == [str(expected)]


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_changing_one_digit_of_a_valid_number_makes_it_invalid(first_nine):
    # Built valid by the reference rule, so that every example is a valid number and none is skipped.
    digits = next(
        (first_nine + check for check in "0123456789" if _reference_check(first_nine + check)), None
    )
    assume(digits is not None)
    assert nhs_number.is_valid(digits)
    for position in range(10):
        for replacement in "0123456789":
            if replacement == digits[position]:
                continue
            changed = digits[:position] + replacement + digits[position + 1 :]
            assert not nhs_number.is_valid(changed)
