"""The sensitive code sets and the SNOMED CT hierarchy they are matched through."""

from django.db import models
from django.utils import timezone


class SensitiveCode(models.Model):
    """A code whose presence makes a record entry sensitive: one of the national exclusion sets, extendable.

    SNOMED CT codes match themselves and, where `include_descendants`, every concept below them in `ConceptIsA`;
    ICD-10 codes match as prefixes (B20 matches B20.1); Read v2 and CTV3 codes match exactly.
    """

    class Set(models.TextChoices):
        ASSISTED_FERTILISATION = "assisted-fertilisation", "Assisted fertilisation (IVF)"
        GENDER_REASSIGNMENT = "gender-reassignment", "Gender reassignment"
        SEXUALLY_TRANSMITTED_INFECTION = "sexually-transmitted-infection", "Sexually transmitted infection"
        TERMINATION_OF_PREGNANCY = "termination-of-pregnancy", "Termination of pregnancy"

    class System(models.TextChoices):
        SNOMED_CT = "http://snomed.info/sct", "SNOMED CT"
        ICD_10 = "http://hl7.org/fhir/sid/icd-10", "ICD-10"
        READ_V2 = "http://read.info/readv2", "Read v2"
        CTV3 = "http://read.info/ctv3", "CTV3"

    sensitive_set = models.CharField(max_length=40, choices=Set.choices)
    system = models.CharField(max_length=60, choices=System.choices)
    code = models.CharField(max_length=20)
    display = models.CharField(max_length=200, blank=True)
    include_descendants = models.BooleanField(default=True)
    # Shipped with sharedcare (the curated default) rather than added by the back office.
    is_default = models.BooleanField(default=False)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sensitive_set", "system", "code"]
        constraints = [models.UniqueConstraint(fields=["system", "code"], name="sensitive_code_once")]

    def __str__(self) -> str:
        return f"{self.get_system_display()} {self.code} ({self.get_sensitive_set_display()})"


class ConceptIsA(models.Model):
    """One SNOMED CT is-a relationship: `child` is a kind of `parent`.

    Loaded from a SNOMED CT release's relationship file by `manage.py snomed_hierarchy_load`; a curated default
    covers the common concepts of the sensitive sets where no release is loaded.
    """

    child = models.CharField(max_length=18)
    parent = models.CharField(max_length=18, db_index=True)
    # Where the row came from: "curated" or the release file's name.
    source = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["child", "parent"], name="concept_is_a_once")]

    def __str__(self) -> str:
        return f"{self.child} is a {self.parent}"


# Patients' rights: objections to sharing, subject access requests and the national data opt-out.
