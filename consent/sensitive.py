"""SNOMED CT concepts whose presence makes a record entry sensitive (DESIGN.md §9, sensitive exclusions).

England withholds four kinds of information from shared records unless the viewer is entitled to it: assisted
fertilisation (IVF), gender reassignment, sexually transmitted disease and termination of pregnancy. The national
exclusion sets are SNOMED CT reference sets holding hundreds of concepts each, descendants included. What follows is
a starting subset: concept ids checked by hand, no descendants. It catches the common codes a partner sends and it
never marks something sensitive that is not; it does not catch everything the national sets do. Replace these sets
with the published reference sets (expanded by a terminology server) before any real patient's data is loaded.
"""

SNOMED_CT = "http://snomed.info/sct"

ASSISTED_FERTILISATION: frozenset[str] = frozenset(
    {
        "52637005",  # In vitro fertilization (procedure)
    }
)

GENDER_REASSIGNMENT: frozenset[str] = frozenset(
    {
        "93461009",  # Gender dysphoria (finding)
        "407374003",  # Transsexual (finding)
    }
)

SEXUALLY_TRANSMITTED_DISEASE: frozenset[str] = frozenset(
    {
        "8098009",  # Sexually transmitted infectious disease (disorder)
        "105629000",  # Chlamydial infection (disorder)
        "15628003",  # Gonorrhea (disorder)
        "76272004",  # Syphilis (disorder)
        "33839006",  # Genital herpes simplex (disorder)
        "56335008",  # Trichomoniasis (disorder)
        "86406008",  # Human immunodeficiency virus infection (disorder)
    }
)

TERMINATION_OF_PREGNANCY: frozenset[str] = frozenset(
    {
        "386639001",  # Termination of pregnancy (procedure)
        "57797005",  # Induced termination of pregnancy (procedure)
    }
)

SENSITIVE_SETS: dict[str, frozenset[str]] = {
    "assisted-fertilisation": ASSISTED_FERTILISATION,
    "gender-reassignment": GENDER_REASSIGNMENT,
    "sexually-transmitted-disease": SEXUALLY_TRANSMITTED_DISEASE,
    "termination-of-pregnancy": TERMINATION_OF_PREGNANCY,
}

SENSITIVE_SNOMED_CODES: frozenset[str] = frozenset().union(*SENSITIVE_SETS.values())


def is_sensitive_snomed_code(code: str) -> bool:
    """True when this SNOMED CT concept id is in one of the sensitive exclusion sets."""
    return code in SENSITIVE_SNOMED_CODES
