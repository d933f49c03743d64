from django.apps import AppConfig


def withheld_mask(value: str) -> str:
    """What the change history shows of free text that may hold clinical detail, or of who a patient is: only that
    it was given, never its words, which stay on the record itself."""
    return "(given, not copied here)" if value else ""


class RecordsConfig(AppConfig):
    name = "records"
    verbose_name = "Records and feeds"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from records.models import Feed, Organisation, PartnerCredential, QuarantinedRecord

        auditlog.register(Organisation)
        auditlog.register(Feed)
        auditlog.register(PartnerCredential, exclude_fields=["key_hash"])
        # Replays and discards of quarantined records, with who did them; the payload itself is not copied, and the
        # NHS number it names and the partner's text about it show only as given; a discard's reason, the back
        # office's own words, is kept whole.
        auditlog.register(
            QuarantinedRecord,
            exclude_fields=["raw_payload"],
            mask_fields=["nhs_number", "detail"],
            mask_callable="records.apps.withheld_mask",
        )
