from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "records"
    verbose_name = "Records and feeds"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from records.models import Feed, Organisation, PartnerCredential, QuarantinedRecord

        auditlog.register(Organisation)
        auditlog.register(Feed)
        auditlog.register(PartnerCredential, exclude_fields=["key_hash"])
        # Replays and discards of quarantined records, with who did them; the payload itself is not copied.
        auditlog.register(QuarantinedRecord, exclude_fields=["raw_payload"])
