#!/usr/bin/env python3
"""A loopback SMTP server for sealtrail's email tests and bench (aiosmtpd).

Prints "PORT <n>" on stdout once it listens (port 0 picks a free one), then
writes every accepted message to DIR/<n>.json (written to a temporary name,
then renamed, so a file that exists is complete):

  {"mail_from": ..., "rcpt_tos": [...], "tls": "none"|"starttls"|"implicit",
   "login": "user" or null, "data": "<raw message>",
   "subject": ..., "body": "<decoded text>", "html": "<decoded html>" or null,
   "content_type": "text/plain" | "multipart/alternative" | ...,
   "headers": {"Name": "value", ...}}

"body" is the text/plain part of a multipart message, "html" its text/html
part.

Options select what the server demands or refuses:
  --starttls CERT KEY     offer STARTTLS and require it before MAIL
  --implicit-tls CERT KEY TLS from the first byte (port 465 style)
  --auth USER:PASS        require AUTH (PLAIN/LOGIN) with these credentials
  --reject ADDR           answer RCPT TO:<ADDR> with 550 (repeatable)
  --tempfail N            answer the first N DATA commands with 451
  --no-write              count messages without writing them (bench)
The server stops when stdin closes (the test process ended).
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, args):
        self.dir = args.dir
        self.reject = {a.lower() for a in args.reject}
        self.tempfail = args.tempfail
        self.write = not args.no_write
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: recipient rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.tempfail > 0:
            self.tempfail -= 1
            return "451 4.3.0 try again later"
        self.count += 1
        if self.write:
            self.save(server, session, envelope)
        return f"250 2.0.0 queued as {self.count}"

    def save(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if session.ssl is not None:
            tls = "starttls"
        elif server.transport.get_extra_info("sslcontext") is not None:
            tls = "implicit"
        else:
            tls = "none"
        login = getattr(session.auth_data, "login", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": tls,
            "login": login.decode() if isinstance(login, bytes) else login,
            "data": raw.decode("utf-8", "replace"),
            "subject": str(msg["subject"]),
            "body": part_text(msg, "plain"),
            "html": part_text(msg, "html"),
            "content_type": msg.get_content_type(),
            "headers": {k: str(v) for k, v in msg.items()},
        }
        tmp = os.path.join(self.dir, f".{self.count}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.dir, f"{self.count}.json"))


def part_text(msg, subtype):
    """The decoded text of the text/<subtype> part (the message itself when
    it is not multipart), or None."""
    if not msg.is_multipart():
        return msg.get_content() if msg.get_content_subtype() == subtype else None
    part = msg.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else None


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tempfail", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    # AUTH without TLS on loopback is deliberate here; keep test output clean.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    handler = Sink(args)
    creds = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        creds = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == creds
        # handled=False: aiosmtpd answers 535 itself on failure.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    starttls_ctx = tls_context(*args.starttls) if args.starttls else None
    implicit_ctx = tls_context(*args.implicit_tls) if args.implicit_tls else None

    def factory():
        kwargs = {"hostname": "sink.test", "ident": "sealtrail test sink"}
        if starttls_ctx:
            kwargs.update(tls_context=starttls_ctx, require_starttls=True)
        if creds:
            kwargs.update(
                authenticator=authenticator,
                auth_required=True,
                # Loopback tests may authenticate without TLS.
                auth_require_tls=bool(starttls_ctx),
            )
        return SMTP(handler, **kwargs)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", args.port, ssl=implicit_ctx)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # Stop when the parent closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
