"""Django's SMTP backend, counting: each mail it hands to the server adds
a line to $PEER_SENT_FILE, so the benchmark knows how many mails
django-helpdesk really sent (it sends with fail_silently=True)."""

import os

from django.core.mail.backends.smtp import EmailBackend


class CountingSMTPBackend(EmailBackend):
    def send_messages(self, email_messages):
        sent = super().send_messages(email_messages)
        path = os.environ.get("PEER_SENT_FILE")
        if sent and path:
            with open(path, "a") as f:
                for m in email_messages[:sent]:
                    f.write(",".join(m.recipients()) + "\n")
        return sent
