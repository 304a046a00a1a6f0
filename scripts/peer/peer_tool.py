"""Helpers of django_helpdesk.sh around the peer's own `get_email`:

  peer_tool.py count HOST PORT USER PASSWORD   messages in the INBOX (IMAP, as the peer reads it)
  peer_tool.py queue                           creates the one queue, from PEER_* variables
  peer_tool.py report                          tickets and follow-ups in the peer's database (JSON)

`queue` and `report` run inside the Django project (settings.py beside this
file); `count` needs only the standard library.
"""

import imaplib
import json
import os
import sys


def count(host, port, user, password):
    imap = imaplib.IMAP4(host, int(port))
    imap.login(user, password)
    typ, data = imap.select("INBOX", readonly=True)
    if typ != "OK":
        sys.exit(f"cannot select INBOX: {data}")
    imap.logout()
    print(int(data[0]))


def django_setup():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    import django

    django.setup()


def queue():
    django_setup()
    from helpdesk.models import Queue

    env = os.environ
    agent = env.get("PEER_AGENT") or None
    Queue.objects.create(
        title="Peer Support",
        slug="peer",
        email_address=env["PEER_USER"],
        allow_email_submission=True,
        # acknowledgements: django-helpdesk mails the submitter of every new
        # ticket ("newticket_submitter") and of every follow-up received by
        # mail ("updated_submitter") whenever those templates exist, which
        # its migration 0003 loads; nothing turns them off here
        new_ticket_cc=agent,
        updated_ticket_cc=agent,
        email_box_type="imap",
        email_box_host=env["PEER_IMAP_HOST"],
        email_box_port=int(env["PEER_IMAP_PORT"]),
        email_box_ssl=False,  # it still upgrades with STARTTLS when offered
        email_box_user=env["PEER_USER"],
        email_box_pass=env["PEER_PASSWORD"],
        email_box_imap_folder="INBOX",
        email_box_interval=0,
        logging_type="none",
    )
    from helpdesk.models import EmailTemplate

    names = set(EmailTemplate.objects.values_list("template_name", flat=True))
    for needed in ("newticket_submitter", "updated_submitter"):
        if needed not in names:
            sys.exit(f"email template {needed} missing: acknowledgements would be off")


def report():
    django_setup()
    from helpdesk.models import FollowUp, Ticket

    print(
        json.dumps(
            {
                "tickets": Ticket.objects.count(),
                "followups": FollowUp.objects.count(),
                "followups_with_recipients": FollowUp.objects.exclude(
                    email_recipients=[]
                )
                .exclude(email_recipients__isnull=True)
                .count(),
            }
        )
    )


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"count": count, "queue": queue, "report": report}[cmd](*args)
