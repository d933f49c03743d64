"""Settings for sharedcare, read from the environment only (see .env.example for every variable)."""

import re
from datetime import time, timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from sharedcare.env import env_bool, env_int, env_int_map, env_list, env_str

django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)

_secret_key = env_str("SECRET_KEY")
if not _secret_key:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG is on.")
    _secret_key = "insecure-debug-only-key-never-used-outside-debug"  # noqa: S105 - DEBUG only
SECRET_KEY: str = _secret_key

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "guardian",
    "auditlog",
    "pgtrigger",
    "axes",
    "csp",
    # Before consent, whose back office takes django-otp's own device pages out again (consent/mfa_admin.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "crispy_forms",
    "crispy_bootstrap5",
    "audit.apps.AuditConfig",
    "records.apps.RecordsConfig",
    "consent.apps.ConsentConfig",
    # The project package itself, so the session limits record every sign-in (sharedcare/sessions.py).
    "sharedcare.sessions_apps.SessionLimitsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so static files stay cacheable while every page is kept out of caches.
    "sharedcare.middleware.NoStoreMiddleware",
    "sharedcare.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-otp's: which second-factor device, if any, this session was verified with; reloaded on every request.
    "django_otp.middleware.OTPMiddleware",
    "consent.middleware.SelectedRoleMiddleware",
    # After both: nothing but the second-factor pages opens until a user who must pass it has (consent/mfa.py).
    "consent.mfa_middleware.MfaRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the user, their chosen role and the messages: it signs out an idle, too old or changed session and
    # tells the login page why.
    "sharedcare.sessions.SessionLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "sharedcare.urls"
WSGI_APPLICATION = "sharedcare.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "records.portal.context.portal_frame",
                "sharedcare.sessions_context.session_timeout",
                "sharedcare.oidc_views.oidc_sign_in",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL must name a PostgreSQL database; `make run` and `make test` start an embedded one."
    )
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("sharedcare runs on PostgreSQL only.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username and address is refused before a password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Sign-in through NHS Care Identity (sharedcare/oidc.py): answers only its own callback, never a password.
    "sharedcare.oidc.Cis2AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object, nobody anonymous reaches patient data

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in lockout (django-axes): after SIGN_IN_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is refused for SIGN_IN_LOCKOUT_MINUTES, on the portal's and the back office's sign-in pages alike. Keyed by
# both, so an attacker cannot lock a colleague out from elsewhere, and one address cannot try many passwords for
# one user. Every failure is kept (axes' failure log) and shown to the privacy officer.
AXES_FAILURE_LIMIT = env_int("SIGN_IN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGN_IN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "sharedcare.sign_in.locked_out"
# A wrong second-factor code is a failed sign-in too (consent/mfa_views.py); the code is never kept in the log.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code"]
# The address the access trail records (REMOTE_ADDR), so a lockout and an audit row name the same client.
AXES_CLIENT_IP_CALLABLE = "sharedcare.middleware.client_address"

# A second factor after the password (django-otp; consent/mfa.py, docs/security.md): required of back-office
# accounts and of anyone holding a privacy officer's role, open to everyone else. MFA_ISSUER names the site in the
# user's authenticator app. After each wrong code a device refuses every code for MFA_THROTTLE_SECONDS, doubling
# with each further wrong one (django-otp's throttle; a new sign-in does not clear it).
OTP_TOTP_ISSUER = env_str("MFA_ISSUER") or "sharedcare"
OTP_TOTP_THROTTLE_FACTOR = env_int("MFA_THROTTLE_SECONDS", 1, minimum=1)
OTP_STATIC_THROTTLE_FACTOR = OTP_TOTP_THROTTLE_FACTOR
# Authentication backends whose sign-in already asked for a second factor, by dotted path: their sessions are not
# asked again. NHS CIS2 authenticates with a smartcard or another second factor itself; a local password never does.
MFA_EXEMPT_BACKENDS: list[str] = ["sharedcare.oidc.Cis2AuthenticationBackend"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "records:home"
LOGOUT_REDIRECT_URL = "login"

# Sign-in through NHS Care Identity (CIS2 Authentication, OpenID Connect; sharedcare/oidc.py, docs/security.md),
# beside the password. On when OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are all set; each endpoint defaults
# to CIS2's path under the issuer. mozilla-django-oidc reads the OIDC_OP_* and OIDC_RP_* names below.
OIDC_ISSUER = (env_str("OIDC_ISSUER") or "").rstrip("/")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID") or ""
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET") or ""
OIDC_ENABLED = bool(OIDC_ISSUER and OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET)
if any((OIDC_ISSUER, OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET)) and not OIDC_ENABLED:
    raise ImproperlyConfigured(
        "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set together or not at all."
    )
if OIDC_ISSUER and not OIDC_ISSUER.startswith(("https://", "http://127.0.0.1:")):
    raise ImproperlyConfigured(
        "OIDC_ISSUER must be an https:// address (http only for a local provider on 127.0.0.1)."
    )
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_AUTHORIZATION_ENDPOINT") or f"{OIDC_ISSUER}/authorize"
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_TOKEN_ENDPOINT") or f"{OIDC_ISSUER}/access_token"
OIDC_OP_USER_ENDPOINT = env_str("OIDC_USERINFO_ENDPOINT") or f"{OIDC_ISSUER}/userinfo"
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_JWKS_ENDPOINT") or f"{OIDC_ISSUER}/connect/jwk_uri"
OIDC_RP_SIGN_ALGO = env_str("OIDC_SIGNING_ALGORITHM") or "RS512"
if OIDC_RP_SIGN_ALGO not in {"RS256", "RS512", "PS256", "PS512", "ES256", "ES512"}:
    raise ImproperlyConfigured(
        f"OIDC_SIGNING_ALGORITHM must be an asymmetric JWS algorithm, not {OIDC_RP_SIGN_ALGO!r}"
    )
OIDC_RP_SCOPES = "openid profile nationalrbacaccess selectedrole"
# CIS2 asks for the role after authentication only when the user signs in afresh.
OIDC_AUTH_REQUEST_EXTRA_PARAMS = {"prompt": "login"}
OIDC_USE_PKCE = True
OIDC_CREATE_USER = False
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc:callback"

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 60 * 60, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
# A session ends after SESSION_IDLE_MINUTES without a request, and SESSION_MAX_HOURS after sign-in whatever the
# activity (sharedcare/sessions.py); pages warn SESSION_WARNING_MINUTES before the end. SESSION_COOKIE_AGE above stays
# the cookie's own cap.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 15, minimum=2)
SESSION_WARNING_MINUTES = env_int("SESSION_WARNING_MINUTES", 2, minimum=1)
if SESSION_WARNING_MINUTES >= SESSION_IDLE_MINUTES:
    raise ImproperlyConfigured("SESSION_WARNING_MINUTES must be shorter than SESSION_IDLE_MINUTES")
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12, minimum=1)
# Served over HTTPS: on by default whenever DEBUG is off. `make run` turns it off for its plain-HTTP loopback server.
HTTPS = env_bool("HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SSL_REDIRECT", default=HTTPS)
# Strict-Transport-Security: a year by default over HTTPS. Preloading is the domain owner's decision (it binds every
# subdomain for good), so it is off unless asked for; the deploy check's warning about it is silenced for that reason.
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 60 * 60 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Behind a TLS-terminating proxy: the header it sets to "https" (e.g. X-Forwarded-Proto). Only set this when the
# proxy overwrites the header on every request; a client could otherwise claim HTTPS.
_proxy_ssl_header = env_str("PROXY_SSL_HEADER")
if _proxy_ssl_header:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", _proxy_ssl_header):
        raise ImproperlyConfigured(f"PROXY_SSL_HEADER must be a header name, not {_proxy_ssl_header!r}")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp): only this site's own scripts, styles and images run or load; no inline script
# or style anywhere, no plug-ins, no framing, forms post only here. Images also from data: URIs, which Bootstrap's
# stylesheet uses for its small icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
SECURE_REFERRER_POLICY = "same-origin"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# `make run` serves through gunicorn, and WhiteNoise reads static files straight from the finders, so no collectstatic
# step is needed there; the container image collects them at build time.
WHITENOISE_USE_FINDERS = True

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Deny by default: a DRF view that does not name its own authentication and permission classes serves no one.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["sharedcare.permissions.DenyAll"],
}

REDIS_URL = env_str("REDIS_URL") or ""
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL must name a Redis server; `make run` and `make test` start an embedded one."
    )
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=60)
# The visibility timeout must outlast the longest task, or Redis hands a running task to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 5 * 60, minimum=10)
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# How long an attendance or admission keeps a legitimate relationship open after it ends.
RELATIONSHIP_ENCOUNTER_DAYS = env_int("RELATIONSHIP_ENCOUNTER_DAYS", 90, minimum=1)
# Default longest self-claimed relationship and break-glass grant, in hours, for the roles a deployment starts with;
# the back office sets each role's own maximum in the roles table.
SELF_CLAIM_HOURS = env_int("SELF_CLAIM_HOURS", 24, minimum=1)
BREAK_GLASS_HOURS = env_int("BREAK_GLASS_HOURS", 4, minimum=1)
# The national data opt-out governs uses beyond individual care; a deployment may also make it hide the record from
# the direct-care view.
NDOP_HIDES_DIRECT_CARE = env_bool("NDOP_HIDES_DIRECT_CARE", False)
# Largest partner file the ingester reads, in bytes.
INGEST_MAX_FILE_BYTES = env_int("INGEST_MAX_FILE_BYTES", 100 * 1024 * 1024, minimum=1024)
# Processes that validate one ingest run's FHIR resources: 1 validates in the run's own process; N > 1 forks up to
# N - 1 workers for each large run (1 MiB of input or more) that validate while the run's process matches, maps and
# writes, as many as the cores other runs going on leave free (a lone run on two cores gets one). Celery prefork
# children fork them too, on Linux only. See docs/benchmarks.md.
INGEST_VALIDATION_PROCESSES = env_int("INGEST_VALIDATION_PROCESSES", 2, minimum=1)
# Each inbox feed reads <FEED_INBOX_ROOT>/<feed code>/incoming and moves files to processed/ or failed/.
FEED_INBOX_ROOT = Path(env_str("FEED_INBOX_ROOT") or BASE_DIR / ".data" / "inbox")
# Largest body a partner may push in one request, in bytes.
PUSH_MAX_BYTES = env_int("PUSH_MAX_BYTES", 50 * 1024 * 1024, minimum=1024)
# How many patients one user may search for in an hour (records/access_limits.py); past it searches are refused,
# audited, and the privacy officer alerted once for that hour.
PATIENT_SEARCHES_PER_HOUR = env_int("PATIENT_SEARCHES_PER_HOUR", 120, minimum=1)
# Partner API limits, counted in the cache's Redis (docs/push-api.md): requests per key, and failed key attempts per
# client address, in each window of PARTNER_API_RATE_WINDOW_SECONDS; bytes pushed per partner in a day.
PARTNER_API_REQUESTS_PER_KEY = env_int("PARTNER_API_REQUESTS_PER_KEY", 60, minimum=1)
PARTNER_API_FAILURES_PER_ADDRESS = env_int("PARTNER_API_FAILURES_PER_ADDRESS", 30, minimum=1)
PARTNER_API_RATE_WINDOW_SECONDS = env_int("PARTNER_API_RATE_WINDOW_SECONDS", 60, minimum=1)
PARTNER_API_DAILY_BYTES = env_int("PARTNER_API_DAILY_BYTES", 200 * 1024 * 1024, minimum=1024)
# A batch still pending this long after it arrived is queued again by the beat's sweep (the broker may have been down).
PUSH_REQUEUE_AFTER_MINUTES = env_int("PUSH_REQUEUE_AFTER_MINUTES", 5, minimum=1)
RECORD_PAGE_SIZE = env_int("RECORD_PAGE_SIZE", 10, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# How long a finished encounter or episode keeps its partner's relationship, in days, by the kind of organisation
# (the values of records.models.Organisation.Kind, written out because settings load before the models): an
# ambulance crew's contact matters for days, a mental-health or social-care episode for months. A kind named
# nowhere here falls back to RELATIONSHIP_ENCOUNTER_DAYS.
ORGANISATION_KINDS = (
    "gp-practice",
    "acute-trust",
    "mental-health-trust",
    "community-trust",
    "ambulance-trust",
    "local-authority",
    "icb",
)
RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND = env_int_map(
    "RELATIONSHIP_ENCOUNTER_DAYS_BY_KIND",
    {
        "gp-practice": 90,
        "acute-trust": 30,
        "mental-health-trust": 90,
        "community-trust": 90,
        "ambulance-trust": 7,
        "local-authority": 90,
    },
    keys=ORGANISATION_KINDS,
    minimum=1,
)

# The public object-to-share form and status page (records/public/, docs/patients-rights.md). POSTs a client address
# may make to the form (with its check-your-answers step) and to the status page, per minute and per day; past
# either, the page answers 429 and stores nothing. django-ratelimit counts them in the default cache (Redis).
PUBLIC_FORM_RATE_PER_MINUTE = env_int("PUBLIC_FORM_RATE_PER_MINUTE", 10, minimum=1)
PUBLIC_FORM_RATE_PER_DAY = env_int("PUBLIC_FORM_RATE_PER_DAY", 100, minimum=1)
PUBLIC_STATUS_RATE_PER_MINUTE = env_int("PUBLIC_STATUS_RATE_PER_MINUTE", 10, minimum=1)
PUBLIC_STATUS_RATE_PER_DAY = env_int("PUBLIC_STATUS_RATE_PER_DAY", 100, minimum=1)
# Behind a reverse proxy every request comes from the proxy's address: name the request header (as Django's META key,
# e.g. HTTP_X_REAL_IP) in which the proxy puts the client's own single address. Unset: the connection's address.
RATELIMIT_IP_META_KEY = env_str("RATELIMIT_IP_META_KEY") or None
# A form posted without its CSRF token: the public pages answer in their own design, every other page as before.
CSRF_FAILURE_VIEW = "records.public.views.csrf_failure"

# The key that signs the audit trail's checkpoints (audit.AuditCheckpoint): an HMAC the database never sees, so its
# owner cannot forge an anchor after removing the newest events. Unset: checkpoints are written and checked unsigned.
AUDIT_ANCHOR_KEY = env_str("AUDIT_ANCHOR_KEY") or ""
# How long an access event is kept: `manage.py audit_purge` removes events older than this (docs/operations.md).
# Eight years by default; less than a year is refused, as no legal basis keeps the trail that briefly.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 2922, minimum=365)

# Outgoing mail: the privacy officers' daily digest (consent.digest). SITE_URL is where the site is reached, for the
# links in mail, which has no request to build them from.
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "sharedcare@localhost"
SITE_URL = (env_str("SITE_URL") or "http://localhost:8000").rstrip("/")
if not SITE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"SITE_URL must start with https:// or http://, not {SITE_URL!r}")

# The scan of the access trail for suspicious patterns (consent/surveillance.py; docs/access-and-audit.md). Alerted:
# more distinct patients in one clock hour than ALERT_VOLUME_MINIMUM and than ALERT_VOLUME_FACTOR times the user's
# usual hourly count (their active hours of the previous 28 days); a view outside working hours (local time) on a
# basis that is not a care relationship; a feed's run creating more relationships than
# ALERT_FEED_RELATIONSHIPS_MINIMUM and than ALERT_FEED_RELATIONSHIPS_FACTOR times the median of its previous runs.
ALERT_VOLUME_MINIMUM = env_int("ALERT_VOLUME_MINIMUM", 30, minimum=1)
ALERT_VOLUME_FACTOR = env_int("ALERT_VOLUME_FACTOR", 3, minimum=1)
ALERT_FEED_RELATIONSHIPS_MINIMUM = env_int("ALERT_FEED_RELATIONSHIPS_MINIMUM", 50, minimum=1)
ALERT_FEED_RELATIONSHIPS_FACTOR = env_int("ALERT_FEED_RELATIONSHIPS_FACTOR", 5, minimum=1)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_working_days = [day.lower() for day in env_list("ALERT_WORKING_DAYS", list(_WEEKDAYS[:5]))]
if not _working_days or set(_working_days) - set(_WEEKDAYS):
    raise ImproperlyConfigured(f"ALERT_WORKING_DAYS must name days among {', '.join(_WEEKDAYS)}")
# Monday is 0, as datetime.weekday() counts.
ALERT_WORKING_WEEKDAYS = sorted({_WEEKDAYS.index(day) for day in _working_days})
_start, _, _end = (env_str("ALERT_WORKING_HOURS") or "08:00-18:30").partition("-")
try:
    ALERT_WORKING_HOURS = (time.fromisoformat(_start.strip()), time.fromisoformat(_end.strip()))
except ValueError:
    ALERT_WORKING_HOURS = (time.max, time.min)
if not ALERT_WORKING_HOURS[0] < ALERT_WORKING_HOURS[1]:
    raise ImproperlyConfigured("ALERT_WORKING_HOURS must be a start and a later end, e.g. 08:00-18:30")
