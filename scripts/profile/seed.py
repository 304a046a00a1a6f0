"""Seeds a mailbox over LMTP for scripts/profile.sh: N messages, the same
ones every run (seeded random). One in five is a real-world message from
the corpus (../shared/corpus, or $GUICHET_CORPUS; skipped when absent),
one in four a reply to an earlier one (In-Reply-To), one in seven carries
an 8 KB PNG; the rest are new questions from 700 customers.

    python3 seed.py N USER [LMTP_PORT]
"""
import base64
import glob
import os
import random
import re
import smtplib
import sys

n = int(sys.argv[1])
user = sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 41024
random.seed(17)
here = os.path.dirname(os.path.abspath(__file__))
corpus_dir = os.environ.get("GUICHET_CORPUS", os.path.join(here, "../../../shared/corpus"))
corpus = sorted(
    f for f in glob.glob(os.path.join(corpus_dir, "**/*.eml"), recursive=True)
    if os.path.getsize(f) < 256 * 1024
)
lmtp = smtplib.LMTP("127.0.0.1", port)
ids = []
for i in range(n):
    customer = f"cust{i % 700}@customers.invalid"
    roll = random.random()
    if roll < 0.2 and corpus:
        raw = open(random.choice(corpus), "rb").read()
        raw = re.sub(rb"(?im)^message-id:.*\r?\n", b"", raw, count=1)
        raw = b"Message-ID: <corpus-%d@bench.invalid>\r\n" % i + raw
        lmtp.sendmail("corpus@customers.invalid", [user], raw)
        continue
    mid = f"<p17-{i}-{random.random()}@customers.invalid>"
    reply = roll > 0.75 and ids
    head = (
        f"From: Customer {i} <{customer}>\r\nTo: {user}\r\n"
        f"Subject: {'Re: ' if reply else ''}Question number {i}\r\n"
        f"Message-ID: {mid}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    if reply:
        head += f"In-Reply-To: {random.choice(ids)}\r\n"
    ids.append(mid)
    text = (
        "Hello,\r\n\r\nThe export fails again with error %d. Could you have a look?\r\n\r\n"
        "Thanks,\r\nCustomer\r\n" % i
    )
    if i % 7 == 0:
        png = b"\x89PNG\r\n\x1a\n" + bytes(random.getrandbits(8) for _ in range(8000))
        png64 = base64.encodebytes(png).decode().replace("\n", "\r\n")
        body = (
            head + "Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
            "--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            "--BB\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=shot.png\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + png64 + "\r\n--BB--\r\n"
        )
    else:
        body = head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    lmtp.sendmail(customer, [user], body.encode())
lmtp.quit()
