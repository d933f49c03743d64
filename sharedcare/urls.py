from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Only the account pages a staff user needs; passwords are reset by the back office, not by e-mail.
account_urls = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(account_urls)),
    path("api/", include("records.partner_api.urls")),
    # For patients, without signing in: the object-to-share form and where a request stands.
    path("object-to-share/", include("records.public.urls")),
    path("", include("records.portal.urls")),
]
