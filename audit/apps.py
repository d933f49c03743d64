from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Access audit"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from audit.models import Alert

        # A review is the only change an alert takes: django-auditlog keeps who recorded which outcome, and when.
        auditlog.register(Alert)
