from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from consent.mfa_views import mfa_enrol_view, mfa_verify_view
from sharedcare.sessions_views import session_keep_alive, session_status

# Only the account pages a staff user needs; passwords are reset by the back office, not by e-mail.
account_urls = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The second factor after the password (consent/mfa.py).
    path("mfa/verify/", mfa_verify_view, name="mfa-verify"),
    path("mfa/enrol/", mfa_enrol_view, name="mfa-enrol"),
    # The session-timeout warning's questions: time left (not activity) and stay signed in (sharedcare/sessions.py).
    path("session/", session_status, name="session-status"),
    path("session/keep-alive/", session_keep_alive, name="session-keep-alive"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(account_urls)),
    # Sign-in through NHS Care Identity (OpenID Connect); both pages answer 404 unless OIDC is configured.
    path("accounts/nhs-care-identity/", include("sharedcare.oidc_views")),
    path("api/", include("records.partner_api.urls")),
    # For patients, without signing in: the object-to-share form and where a request stands.
    path("object-to-share/", include("records.public.urls")),
    path("", include("records.portal.urls")),
]
