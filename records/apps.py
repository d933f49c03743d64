from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "records"
    verbose_name = "Records and feeds"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from records.models import Feed, Organisation

        auditlog.register(Organisation)
        auditlog.register(Feed)
