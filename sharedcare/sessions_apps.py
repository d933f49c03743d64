"""The project package as an app, so that the session limits hear of every sign-in from the start."""

from django.apps import AppConfig


class SessionLimitsConfig(AppConfig):
    name = "sharedcare"
    verbose_name = "sharedcare"

    def ready(self) -> None:
        from sharedcare.sessions import session_limits_connect

        session_limits_connect()
