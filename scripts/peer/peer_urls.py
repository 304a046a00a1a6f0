"""URLs of the peer project: django-helpdesk's own (its mail templates
link to tickets, so the URLconf must resolve)."""

from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls"))]
