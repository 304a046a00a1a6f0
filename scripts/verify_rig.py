#!/usr/bin/env python3
"""End-to-end check of a running Guichet test rig, with real clients only (stdlib).

    python3 scripts/verify_rig.py /tmp/guichet-rig   # DIR as given to `mailrig.sh start DIR`

Not part of the test suite (the Rust tests check the rig through
tests/support, see tests/rig.rs); a quick manual check after changing
scripts/mailrig.sh.

Reads DIR/env, then talks to every service the way a test of the bot would:
IMAP (plain, STARTTLS, IMAPS, APPEND/SEARCH/FETCH, raw-socket IDLE),
SMTP (no auth, STARTTLS+AUTH, SMTPS, +detail, catch-all, refused/deferred
domains), LMTP, any-user mailboxes (fresh users, isolation, other domains refused),
clamd (zPING, zINSTREAM over TCP and unix socket, clamdscan CLI) and
PostgreSQL (psql).  Ends with the line "N passed, N failed"; exit 1 on failure.
"""
import email.message
import email.utils
import imaplib
import os
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import uuid

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def load_env(d):
    env = {}
    with open(os.path.join(d, "env")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k:
                env[k] = v
    return env


E = load_env(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MAILRIG_DIR", "/tmp/guichet-rig"))
H = E["IMAP_HOST"]
PW = E["MAIL_PASSWORD"]
D = E["MAIL_DOMAIN"]
CTX = ssl.create_default_context(cafile=E["TLS_CA_FILE"])  # full verification
RESULTS = []


def check(name):
    def deco(fn):
        t0 = time.perf_counter()
        try:
            detail = fn() or ""
            RESULTS.append((name, True))
            print(f"PASS {name} ({time.perf_counter() - t0:.3f}s) {detail}")
        except Exception as e:  # noqa: BLE001 - report and go on
            RESULTS.append((name, False))
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        return fn
    return deco


def mkmsg(frm, to, subject, body="Hello from the mailrig check.\n"):
    m = email.message.EmailMessage()
    m["From"], m["To"], m["Subject"] = frm, to, subject
    m["Date"] = email.utils.formatdate(localtime=True)
    m["Message-ID"] = email.utils.make_msgid(domain=D)
    m.set_content(body)
    return m


def imap(user, tls=False):
    c = imaplib.IMAP4_SSL(H, int(E["IMAPS_PORT"]), ssl_context=CTX) if tls \
        else imaplib.IMAP4(H, int(E["IMAP_PORT"]))
    c.login(user if "@" in user else f"{user}@{D}", PW)
    return c


def fresh(prefix):
    """A mailbox nobody used before: every *@example.test exists."""
    return f"v{uuid.uuid4().hex[:8]}-{prefix}@{D}"


def wait_for_subject(user, subject, timeout=15.0, mailbox="INBOX"):
    """Poll the user's mailbox until a message with this subject exists."""
    t0 = time.perf_counter()
    c = imap(user)
    try:
        while True:
            c.select(mailbox, readonly=True)
            typ, data = c.uid("SEARCH", None, "HEADER", "Subject", subject)
            if data[0].split():
                uid = data[0].split()[-1]
                typ, msg = c.uid("FETCH", uid, "(BODY.PEEK[])")
                return msg[0][1], time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{subject!r} not in {user}/{mailbox} after {timeout}s")
            time.sleep(0.05)
    finally:
        c.logout()


# ---------------------------------------------------------------- IMAP
@check("imap: login, SELECT, APPEND, SEARCH, FETCH (plain :%s)" % E["IMAP_PORT"])
def _():
    c = imap("support")
    caps = c.capabilities
    assert "IDLE" in caps, caps
    typ, data = c.select("INBOX")
    assert typ == "OK"
    subj = f"append-{uuid.uuid4().hex[:8]}"
    raw = mkmsg(f"customer1@{D}", f"support@{D}", subj, "Ticket body\n").as_bytes()
    typ, data = c.append("INBOX", r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw)
    assert typ == "OK", data
    typ, data = c.uid("SEARCH", None, "SUBJECT", subj)
    uids = data[0].split()
    assert len(uids) == 1, data
    typ, data = c.uid("FETCH", uids[0], "(FLAGS BODY.PEEK[])")
    body = data[0][1]
    assert body.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n"), "content differs"
    c.logout()
    return f"uid={uids[0].decode()} caps={' '.join(sorted(caps))}"


@check("imap: STARTTLS on :%s and IMAPS :%s with CA verification" % (E["IMAP_PORT"], E["IMAPS_PORT"]))
def _():
    c = imaplib.IMAP4(H, int(E["IMAP_PORT"]))
    c.starttls(ssl_context=CTX)
    c.login(f"agent@{D}", PW)
    c.select("INBOX")
    c.logout()
    c = imap("agent", tls=True)
    typ, data = c.list()
    names = b" ".join(data)
    assert b"Sent" in names and b"Trash" in names, data
    ver = c.sock.version()
    c.logout()
    return ver


@check("imap: wrong password is rejected")
def _():
    c = imaplib.IMAP4(H, int(E["IMAP_PORT"]))
    try:
        c.login(f"support@{D}", "wrong")
    except imaplib.IMAP4.error as e:
        return str(e)
    raise AssertionError("login with wrong password succeeded")


def idle_roundtrip(tls):
    """Raw-socket IDLE (imaplib in 3.11 has no idle()): wait for EXISTS."""
    port = int(E["IMAPS_PORT"] if tls else E["IMAP_PORT"])
    s = socket.create_connection((H, port), timeout=15)
    if tls:
        s = CTX.wrap_socket(s, server_hostname=H)
    f = s.makefile("rb")

    def cmd(tag, line):
        s.sendall(f"{tag} {line}\r\n".encode())
        while True:
            r = f.readline()
            if r.startswith(tag.encode() + b" "):
                assert b" OK" in r, r
                return

    assert f.readline().startswith(b"* OK")
    cmd("a1", f'LOGIN "customer1@{D}" "{PW}"')
    cmd("a2", "SELECT INBOX")
    s.sendall(b"a3 IDLE\r\n")
    assert f.readline().startswith(b"+ "), "no IDLE continuation"
    subj = f"idle-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as smtp:
        smtp.send_message(mkmsg(f"support@{D}", f"customer1@{D}", subj))
    while True:
        r = f.readline()
        if not r:
            raise AssertionError("connection closed during IDLE")
        if r.startswith(b"* ") and r.rstrip().endswith(b"EXISTS"):
            latency = time.perf_counter() - t0
            break
    s.sendall(b"DONE\r\n")
    while True:
        r = f.readline()
        if r.startswith(b"a3 "):
            assert b"a3 OK" in r, r
            break
    cmd("a4", "LOGOUT")
    s.close()
    return f"SMTP send -> '{r.decode().strip()}' ... '* N EXISTS' in {latency*1000:.0f} ms"


@check("imap: IDLE push after SMTP delivery (raw socket, plain)")
def _():
    return idle_roundtrip(False)


@check("imap: IDLE push after SMTP delivery (raw socket, IMAPS)")
def _():
    return idle_roundtrip(True)


# ---------------------------------------------------------------- SMTP
@check("smtp: send without auth on :%s -> read it via IMAP" % E["SMTP_PORT"])
def _():
    subj = f"smtp-noauth-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.ehlo("bot.example.test")
        s.send_message(mkmsg(f"support@{D}", f"customer1@{D}", subj, "Your ticket is solved.\n"))
    raw, lat = wait_for_subject("customer1", subj)
    assert b"Your ticket is solved." in raw
    return f"delivered+visible in {lat*1000:.0f} ms"


@check("smtp: STARTTLS + AUTH PLAIN on :%s" % E["SMTP_PORT"])
def _():
    subj = f"smtp-starttls-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.starttls(context=CTX)
        s.login(f"agent@{D}", PW)
        s.send_message(mkmsg(f"agent@{D}", f"customer2@{D}", subj))
    wait_for_subject("customer2", subj)


@check("smtp: implicit TLS (SMTPS) + AUTH on :%s" % E["SMTPS_PORT"])
def _():
    subj = f"smtps-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP_SSL(H, int(E["SMTPS_PORT"]), context=CTX, local_hostname="localhost") as s:
        s.login(f"support@{D}", PW)
        s.send_message(mkmsg(f"support@{D}", f"customer3@{D}", subj))
    wait_for_subject("customer3", subj)


@check("smtp: AUTH PLAIN without TLS, wrong password rejected")
def _():
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.login(f"support@{D}", PW)
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        try:
            s.login(f"support@{D}", "wrong")
        except smtplib.SMTPAuthenticationError as e:
            return f"{e.smtp_code}"
    raise AssertionError("bad password accepted")


@check("smtp: plus-addressing support+ticket-42@ lands in support's INBOX")
def _():
    subj = f"plus-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.send_message(mkmsg(f"customer1@{D}", f"support+ticket-42@{D}", subj))
    raw, _ = wait_for_subject("support", subj)
    assert b"support+ticket-42@" in raw


@check("smtp: outside recipient never leaves, lands in catchall@")
def _():
    subj = f"outside-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.send_message(mkmsg(f"support@{D}", "someone@customer.invalid", subj))
    raw, _ = wait_for_subject("catchall", subj)
    assert b"To: someone@customer.invalid" in raw


@check("smtp: refused.example.test -> 550, deferred.example.test -> 450 at RCPT")
def _():
    out = []
    for dom, want in ((E["SMTP_REFUSED_DOMAIN"], 550), (E["SMTP_DEFERRED_DOMAIN"], 450)):
        with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
            try:
                s.send_message(mkmsg(f"support@{D}", f"anyone@{dom}", "x"))
            except smtplib.SMTPRecipientsRefused as e:
                code, msg = list(e.recipients.values())[0]
                assert code == want, (code, msg)
                out.append(f"{code}")
                continue
        raise AssertionError(f"anyone@{dom} accepted")
    return "/".join(out)


@check("any user: two fresh users over SMTP and LMTP, each sees only its own mail")
def _():
    a, b = fresh("support"), fresh("customer")
    sa, sb = f"fresh-a-{uuid.uuid4().hex[:8]}", f"fresh-b-{uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(H, int(E["SMTP_PORT"]), local_hostname="localhost") as s:
        s.send_message(mkmsg(b, a, sa))
    l = smtplib.LMTP(H, int(E["LMTP_PORT"]))
    l.send_message(mkmsg(a, b, sb))
    l.quit()
    wait_for_subject(a, sa)
    wait_for_subject(b, sb)
    for user, want in ((a, sa), (b, sb)):
        c = imap(user)
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
        c.logout()
        assert subjects == [f"Subject: {want}"], (user, subjects)
    return f"{a} {b}"


@check("any user: other domains have no mailbox (IMAP login and LMTP refused)")
def _():
    c = imaplib.IMAP4(H, int(E["IMAP_PORT"]))
    try:
        c.login("someone@customer.invalid", PW)
        raise AssertionError("login for another domain succeeded")
    except imaplib.IMAP4.error:
        pass
    l = smtplib.LMTP(H, int(E["LMTP_PORT"]))
    try:
        l.send_message(mkmsg(f"support@{D}", "someone@customer.invalid", "x"))
        raise AssertionError("LMTP accepted another domain")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = list(e.recipients.values())[0]
        return f"{code} {msg.decode()}"
    finally:
        l.close()


@check("lmtp: direct delivery to Dovecot on :%s" % E["LMTP_PORT"])
def _():
    subj = f"lmtp-{uuid.uuid4().hex[:8]}"
    s = smtplib.LMTP(H, int(E["LMTP_PORT"]), local_hostname="localhost")
    s.send_message(mkmsg(f"support@{D}", f"agent@{D}", subj))
    s.quit()
    wait_for_subject("agent", subj)


# ---------------------------------------------------------------- clamd
def clamd(cmd_bytes, payload=None, unix=False):
    if unix:
        s = socket.socket(socket.AF_UNIX)
        s.connect(E["CLAMD_SOCKET"])
    else:
        s = socket.create_connection((E["CLAMD_HOST"], int(E["CLAMD_PORT"])))
    s.settimeout(15)
    s.sendall(cmd_bytes)
    if payload is not None:
        for i in range(0, len(payload), 8192):
            chunk = payload[i:i + 8192]
            s.sendall(struct.pack("!I", len(chunk)) + chunk)
        s.sendall(struct.pack("!I", 0))
    resp = b""
    while not resp.endswith(b"\0"):
        b = s.recv(4096)
        if not b:
            break
        resp += b
    s.close()
    return resp.rstrip(b"\0").decode()


@check("clamd: zPING / zVERSION on :%s" % E["CLAMD_PORT"])
def _():
    assert clamd(b"zPING\0") == "PONG"
    return clamd(b"zVERSION\0")


@check("clamd: zINSTREAM EICAR -> FOUND, clean -> OK (TCP)")
def _():
    r1 = clamd(b"zINSTREAM\0", EICAR)
    assert r1.endswith("FOUND"), r1
    r2 = clamd(b"zINSTREAM\0", b"just a harmless customer question\n" * 100)
    assert r2 == "stream: OK", r2
    return f"{r1!r} / {r2!r}"


@check("clamd: EICAR as base64 mail attachment -> FOUND (unix socket)")
def _():
    m = mkmsg(f"customer1@{D}", f"support@{D}", "invoice", "see attachment\n")
    m.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="invoice.com")
    r = clamd(b"zINSTREAM\0", m.as_bytes(), unix=True)
    assert r.endswith("FOUND"), r
    clean = mkmsg(f"customer1@{D}", f"support@{D}", "hello", "no virus here\n")
    clean.add_attachment(b"%PDF-1.4 harmless", maintype="application", subtype="pdf", filename="a.pdf")
    r2 = clamd(b"zINSTREAM\0", clean.as_bytes(), unix=True)
    assert r2 == "stream: OK", r2
    return r


@check("clamd: clamdscan CLI (--config-file, --stream)")
def _():
    with tempfile.TemporaryDirectory() as t:
        bad, good = os.path.join(t, "eicar.txt"), os.path.join(t, "ok.txt")
        open(bad, "wb").write(EICAR)
        open(good, "wb").write(b"hello\n")
        base = ["clamdscan", f"--config-file={E['CLAMD_CONF']}", "--no-summary", "--stream"]
        p = subprocess.run(base + [bad], capture_output=True, text=True)
        assert p.returncode == 1 and "FOUND" in p.stdout, (p.returncode, p.stdout, p.stderr)
        p2 = subprocess.run(base + [good], capture_output=True, text=True)
        assert p2.returncode == 0, (p2.returncode, p2.stdout, p2.stderr)
        return p.stdout.strip()


# ---------------------------------------------------------------- PostgreSQL
@check("postgres: psql via DATABASE_URL, create/insert/select")
def _():
    sql = ("drop table if exists rig_check; create table rig_check(id serial primary key, t text);"
           "insert into rig_check(t) values ('hello');"
           "select current_database() || ' ' || current_user || ' ' || count(*) from rig_check;")
    p = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", E["DATABASE_URL"], "-c", sql],
                       capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "helpdesk helpdesk 1", p.stdout
    v = subprocess.run(["psql", "-X", "-tA", "-h", E["PGHOST"], "-p", E["PGPORT"], "-U", E["PGUSER"],
                        "-d", E["PGDATABASE"], "-c", "show server_version"], capture_output=True, text=True)
    return f"{p.stdout.strip()} (server {v.stdout.strip()})"


passed = sum(ok for _, ok in RESULTS)
failed = len(RESULTS) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
