from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Access rules"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from consent.models import FeedSupportAssignment, LegitimateRelationship, StaffProfile

        auditlog.register(StaffProfile)
        auditlog.register(LegitimateRelationship)
        # Who may read which partner's feed data, and who granted it.
        auditlog.register(FeedSupportAssignment)
