#!/usr/bin/env python3
"""soak.py - Guichet under kill -9 and outages (issue 13). Run by scripts/soak.sh.

One run on one backend:
  * a backlog of N messages: N/2 customers each write a question (every
    fifth with a PDF), appended to the support mailbox before the start,
    and a reply to it (In-Reply-To the question), appended while the
    daemons run;
  * SQLite: one daemon; PostgreSQL: two daemons on one database and one
    mailbox;
  * every 0.05-1 s a daemon is killed with SIGKILL and started again, at
    least KILLS times;
  * meanwhile Dovecot (IMAP), Postfix (SMTP), clamd and the webhook
    endpoint are each taken down for OUTAGE seconds, one after another;
  * then the daemons run undisturbed until everything is out.

It prints what was lost and duplicated (tickets, messages, customer mails,
agent copies, webhook events), read back from the real servers (IMAP
mailboxes, the webhook receiver) and the database, and the time everything
took to go out after the last kill and outage. Exit 1 when a ticket or a
message is lost or duplicated, or when mail duplicates pass the bound the
README states (2 per SMTP connection per kill).
"""

import argparse
import email
import http.server
import imaplib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

SMTP_CONNECTIONS = 2  # src/workers/deliver.rs


def log(*a):
    print("[soak]", *a, file=sys.stderr, flush=True)


def rig_env(rig_dir):
    env = {}
    with open(os.path.join(rig_dir, "env")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


class Receiver:
    """A webhook endpoint on loopback that counts every event id it gets,
    and can be taken down (its port closed) and brought back."""

    def __init__(self, port):
        self.port = port
        self.seen = Counter()
        self.lock = threading.Lock()
        self.server = None
        self.up()

    def up(self):
        seen, lock = self.seen, self.lock

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    event = json.loads(body).get("id")
                except ValueError:
                    event = None
                with lock:
                    seen[event] += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def question(tag, i, customer, support):
    mid = f"<q{i}.{tag}@soak.test>"
    head = (
        f"From: Customer {i} <{customer}>\r\nTo: {support}\r\n"
        f"Subject: Question {i} {tag}\r\nMessage-ID: {mid}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\n"
    )
    text = f"Hello, this is question {i}. My order does not arrive.\r\n"
    if i % 5:
        return head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    import base64

    b64 = base64.encodebytes(PDF).decode().replace("\n", "\r\n")
    return (
        head
        + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + text
        + '--b\r\nContent-Type: application/pdf; name="invoice.pdf"\r\n'
        + 'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
        + "Content-Transfer-Encoding: base64\r\n\r\n"
        + b64
        + "--b--\r\n"
    )


def reply(tag, i, customer, support):
    return (
        f"From: Customer {i} <{customer}>\r\nTo: {support}\r\n"
        f"Subject: Re: Question {i} {tag}\r\nMessage-ID: <r{i}.{tag}@soak.test>\r\n"
        f"In-Reply-To: <q{i}.{tag}@soak.test>\r\nReferences: <q{i}.{tag}@soak.test>\r\n"
        f"Date: {email.utils.formatdate()}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Any news about question {i}?\r\n"
    )


def imap_login(env, user):
    m = imaplib.IMAP4(env["IMAP_HOST"], int(env["IMAP_PORT"]))
    m.login(user, env["MAIL_PASSWORD"])
    return m


def append_all(env, user, raws, retry=True):
    """Appends messages to user's INBOX, retrying while Dovecot is down."""
    pending = list(raws)
    while pending:
        try:
            m = imap_login(env, user)
            while pending:
                m.append("INBOX", None, None, pending[0].encode())
                pending.pop(0)
            m.logout()
        except (OSError, imaplib.IMAP4.error):
            if not retry:
                raise
            time.sleep(0.5)


def message_ids(env, user):
    """Message-ID of every message in user's INBOX (with repeats)."""
    m = imap_login(env, user)
    typ, data = m.select("INBOX", readonly=True)
    out = []
    if int(data[0]) > 0:
        typ, rows = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for row in rows:
            if isinstance(row, tuple):
                msg = email.message_from_bytes(row[1])
                out.append((msg.get("Message-ID") or "").strip())
    m.logout()
    return out


class Database:
    def __init__(self, url, env):
        self.url, self.env = url, env

    def scalar(self, sql):
        if self.url.startswith("sqlite://"):
            path = self.url[len("sqlite://") :]
            for _ in range(50):
                try:
                    c = sqlite3.connect(path, timeout=30)
                    v = c.execute(sql).fetchone()[0]
                    c.close()
                    return v
                except sqlite3.OperationalError:
                    time.sleep(0.2)
            raise RuntimeError("sqlite busy")
        out = subprocess.run(
            ["psql", "-X", "-tA", self.url, "-c", sql], capture_output=True, text=True
        )
        if out.returncode:
            raise RuntimeError(out.stderr)
        return int(out.stdout.strip() or 0)


def settings(env, a, support, agent, db_url, hook_port, workdir):
    return f"""[helpdesk]
secret_file = "{workdir}/secret"
# every message of the soak is new: no "old mail" quiet
old_mail_days = 0

[attachments]
storage_dir = "{workdir}/files"
allowed_extensions = ["pdf"]

[antivirus]
clamd = "tcp://{env['CLAMD_HOST']}:{env['CLAMD_PORT']}"

[imap]
host = "{env['IMAP_HOST']}"
port = {env['IMAP_PORT']}
tls = "none"
username = "{support}"
password = "{env['MAIL_PASSWORD']}"
poll_seconds = 2

[smtp]
host = "{env['SMTP_HOST']}"
port = {env['SMTP_PORT']}
tls = "none"
from = "Soak Support <{support}>"

[database]
url = "{db_url}"

[[departments]]
name = "Support"
address = "{support}"
agents = ["{agent}"]

[[webhooks]]
url = "http://127.0.0.1:{hook_port}/hook"
format = "json"
timeout_seconds = 5
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rig", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--outage", type=float, default=60)
    p.add_argument("--hook-port", type=int, default=47999)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    env = rig_env(a.rig)
    tag = f"{os.getpid():x}{rnd.randrange(1 << 20):x}"
    support = f"soak{tag}-support@{env['MAIL_DOMAIN']}"
    agent = f"soak{tag}-agent@{env['MAIL_DOMAIN']}"
    n_customers = a.messages // 2
    customers = [f"soak{tag}-c{i}@{env['MAIL_DOMAIN']}" for i in range(n_customers)]
    workdir = f"/tmp/guichet-soak-{a.backend}-{tag}"
    os.makedirs(workdir)
    with open(f"{workdir}/secret", "w") as f:
        f.write(os.urandom(16).hex())
    os.chmod(f"{workdir}/secret", 0o600)
    if a.backend == "sqlite":
        db_url = f"sqlite://{workdir}/guichet.db"
    else:
        name = f"soak_{tag}"
        subprocess.run(
            ["psql", "-X", "-q", env["PG_ADMIN_URL"], "-c", f"CREATE DATABASE {name} OWNER helpdesk"],
            check=True,
        )
        base = env["DATABASE_URL"].rsplit("/", 1)[0]
        db_url = f"{base}/{name}"
    config = f"{workdir}/guichet.toml"
    with open(config, "w") as f:
        f.write(settings(env, a, support, agent, db_url, a.hook_port, workdir))
    log(f"backend {a.backend}, {a.messages} messages, seed {seed}, work dir {workdir}")
    receiver = Receiver(a.hook_port)
    db = Database(db_url, env)

    # the backlog: every question waits in the mailbox before the start
    append_all(env, support, [question(tag, i, c, support) for i, c in enumerate(customers)])
    replies = [reply(tag, i, c, support) for i, c in enumerate(customers)]

    n_daemons = 1 if a.backend == "sqlite" else 2
    logs = [open(f"{workdir}/daemon{d}.log", "ab") for d in range(n_daemons)]

    def start(d):
        return subprocess.Popen(
            [a.bin, "--config", config, "run"],
            stdout=logs[d],
            stderr=logs[d],
            env={**os.environ, "RUST_LOG": "warn"},
        )

    daemons = [start(d) for d in range(n_daemons)]
    started = time.monotonic()

    # replies arrive while the daemons run (and while IMAP may be down)
    def feed():
        for r in replies:
            append_all(env, support, [r])
            time.sleep(rnd.uniform(0.0, 0.2))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    # outages, one after another, from 10 s in
    outages = [("dovecot", "IMAP"), ("postfix", "SMTP"), ("clamd", "clamd"), ("webhook", "webhook endpoint")]
    outage_log = []

    def outage_runner():
        time.sleep(10)
        for name, what in outages:
            t0 = time.monotonic() - started
            log(f"{what} down for {a.outage:.0f} s")
            if name == "webhook":
                receiver.down()
            else:
                subprocess.run(["bash", "scripts/mailrig.sh", "down", a.rig, name], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(a.outage)
            if name == "webhook":
                receiver.up()
            else:
                # a loaded machine may start clamd slowly: try again
                for attempt in range(5):
                    done = subprocess.run(["bash", "scripts/mailrig.sh", "up", a.rig, name],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if done.returncode == 0:
                        break
                    log(f"{what} did not come up (attempt {attempt + 1}); trying again")
                    time.sleep(5)
            log(f"{what} up again")
            outage_log.append((what, t0))
            time.sleep(5)

    outage_thread = threading.Thread(target=outage_runner, daemon=True)
    outage_thread.start()

    kills = 0
    while kills < a.kills or outage_thread.is_alive() or feeder.is_alive():
        time.sleep(rnd.uniform(0.05, 1.0))
        d = rnd.randrange(n_daemons)
        daemons[d].send_signal(signal.SIGKILL)
        daemons[d].wait()
        kills += 1
        daemons[d] = start(d)
    chaos_over = time.monotonic()
    log(f"{kills} kills in {chaos_over - started:.0f} s; now waiting for everything to go out")

    # settled: every message stored, nothing queued
    settled = None
    deadline = chaos_over + 600
    while time.monotonic() < deadline:
        try:
            stored = db.scalar("SELECT COUNT(*) FROM raw_messages")
            pending = db.scalar(
                "SELECT COUNT(*) FROM outbox_mail WHERE sent_at IS NULL AND failed_at IS NULL"
            ) + db.scalar(
                "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL"
            )
        except RuntimeError:
            stored, pending = -1, -1
        if stored >= a.messages and pending == 0:
            settled = time.monotonic()
            break
        time.sleep(0.5)
    for d in daemons:
        d.send_signal(signal.SIGTERM)
    for d in daemons:
        d.wait(timeout=30)
    time.sleep(2)  # the last deliveries reach the mailboxes (LMTP)

    # what happened, read back
    tickets = db.scalar("SELECT COUNT(*) FROM tickets")
    subjects = db.scalar("SELECT COUNT(DISTINCT subject) FROM tickets")
    raw = db.scalar("SELECT COUNT(*) FROM raw_messages")
    problems = db.scalar("SELECT COUNT(*) FROM raw_messages WHERE problem IS NOT NULL")
    inbound = db.scalar("SELECT COUNT(*) FROM messages WHERE direction = 'in'")
    queued_mail = db.scalar("SELECT COUNT(*) FROM outbox_mail")
    failed_mail = db.scalar("SELECT COUNT(*) FROM outbox_mail WHERE failed_at IS NOT NULL")
    events = db.scalar("SELECT COUNT(DISTINCT event_id) FROM webhook_outbox")
    dead_events = db.scalar("SELECT COUNT(*) FROM webhook_outbox WHERE dead_at IS NOT NULL")
    # the longest time a mail waited in the queue (it includes the SMTP
    # outage for the mail queued during it)
    if a.backend == "sqlite":
        longest = db.scalar(
            "SELECT CAST(MAX((julianday(sent_at) - julianday(created_at)) * 86400000) AS INTEGER) "
            "FROM outbox_mail WHERE sent_at IS NOT NULL"
        )
    else:
        longest = db.scalar(
            "SELECT CAST(MAX(EXTRACT(EPOCH FROM (sent_at - created_at)) * 1000) AS BIGINT) "
            "FROM outbox_mail WHERE sent_at IS NOT NULL"
        )

    customer_dups = customer_missing = 0
    for c in customers:
        ids = Counter(message_ids(env, c))
        customer_dups += sum(n - 1 for n in ids.values())
        customer_missing += 0 if ids else 1
    agent_ids = Counter(message_ids(env, agent))
    agent_dups = sum(n - 1 for n in agent_ids.values())
    agent_missing = max(0, a.messages - len(agent_ids))
    hook_dups = sum(n - 1 for n in receiver.seen.values())
    hook_missing = max(0, events - len(receiver.seen))

    bound = kills * SMTP_CONNECTIONS * 2
    report = {
        "backend": a.backend,
        "daemons": n_daemons,
        "messages": a.messages,
        "kills": kills,
        "outages": [f"{w} at {t:.0f} s for {a.outage:.0f} s" for w, t in outage_log],
        "seed": seed,
        "tickets": tickets,
        "lost_tickets": n_customers - subjects,
        "duplicated_tickets": tickets - subjects,
        "messages_stored": raw,
        "problems": problems,
        "lost_messages": a.messages - inbound,
        "customer_mails_duplicated": customer_dups,
        "customers_without_acknowledgement": customer_missing,
        "agent_copies_duplicated": agent_dups,
        "agent_copies_missing": agent_missing,
        "mail_queued": queued_mail,
        "mail_failed": failed_mail,
        "webhook_events": events,
        "webhook_events_duplicated": hook_dups,
        "webhook_events_missing": hook_missing,
        "webhook_events_dead": dead_events,
        "mail_duplicate_bound": bound,
        "longest_queue_wait_s": round((longest or 0) / 1000, 1),
        "longest_wait_target_s": a.outage + 60,
        "everything_out_after_chaos_s": None if settled is None else round(settled - chaos_over, 1),
        "total_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    ok = (
        settled is not None
        and report["lost_tickets"] == 0
        and report["duplicated_tickets"] == 0
        and report["lost_messages"] == 0
        and customer_missing == 0
        and agent_missing == 0
        and hook_missing == 0
        and customer_dups + agent_dups <= bound
        and (longest or 0) / 1000 <= a.outage + 60
    )
    log("PASS" if ok else "FAIL", json.dumps(report, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
