"""Django settings of the peer benchmark: django-helpdesk 2.6 on SQLite,
reading one IMAP mailbox and sending over SMTP, as a small install would.

Everything that varies per run comes from the environment, set by
django_helpdesk.sh: PEER_RUN_DIR (database and attachments), PEER_SMTP_HOST,
PEER_SMTP_PORT, PEER_SENT_FILE (where the counting backend records each mail).
"""

import os

RUN_DIR = os.environ["PEER_RUN_DIR"]

SECRET_KEY = "guichet-bench-peer-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
SITE_ID = 1
ROOT_URLCONF = "peer_urls"
STATIC_URL = "/static/"
MEDIA_ROOT = os.path.join(RUN_DIR, "media")
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# A fresh file per run (django_helpdesk.sh makes a new PEER_RUN_DIR).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(RUN_DIR, "helpdesk.sqlite3"),
    }
}

# Outgoing mail: Django's own SMTP backend (one connection per mail, as
# django-helpdesk sends them), subclassed only to count what it sent.
EMAIL_BACKEND = "peer_mail.CountingSMTPBackend"
EMAIL_HOST = os.environ.get("PEER_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("PEER_SMTP_PORT", "25"))
EMAIL_USE_TLS = False
EMAIL_USE_SSL = False
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = "Peer Support <peer@example.test>"

# pinax-teams is not installed; the rest are django-helpdesk's defaults,
# attachments on (HELPDESK_ENABLE_ATTACHMENTS defaults to True).
HELPDESK_TEAMS_MODE_ENABLED = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
