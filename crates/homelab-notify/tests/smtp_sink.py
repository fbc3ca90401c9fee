#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the e-mail tests, on 127.0.0.1 only.

Each accepted message is written to DIR/NNNN.eml (atomically: temp file, then rename), NNNN
counting transactions; its first lines are X-Sink-* headers with the envelope, the login and
whether the session was encrypted. Its decoded text body is in DIR/NNNN.body, written first. A transaction answered with an error leaves DIR/NNNN.refused
with the answer and the Message-ID instead. DIR/ready appears once the server listens.

  --starttls CERT KEY   offer STARTTLS with this certificate and require it before MAIL
  --user U --password P require AUTH (PLAIN or LOGIN) with these
  --fail-first N        answer the first N transactions 451 (transient)
  --refuse-first N      answer the next N transactions 550 (permanent)
"""

import argparse
import asyncio
import email
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def write_atomic(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class Sink:
    def __init__(self, args):
        self.args = args
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        n = self.n
        a = self.args
        message_id = email.message_from_bytes(envelope.original_content).get("Message-ID", "")
        if n <= a.fail_first:
            answer = "451 4.3.0 try again later (sink)"
        elif n <= a.fail_first + a.refuse_first:
            answer = "550 5.7.1 refused by the sink"
        else:
            answer = None
        if answer:
            write_atomic(os.path.join(a.dir, f"{n:04}.refused"), f"{answer}\n{message_id}\n".encode())
            return answer
        login = session.auth_data if session.authenticated else None
        head = (
            f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
            f"X-Sink-Rcpt-To: {','.join(envelope.rcpt_tos)}\r\n"
            f"X-Sink-Login: {login.login.decode() if login else ''}\r\n"
            f"X-Sink-Tls: {'yes' if session.ssl else 'no'}\r\n"
        )
        # The text body decoded (quoted-printable or base64 as the sender chose), then the mail.
        body = email.message_from_bytes(envelope.original_content).get_payload(decode=True)
        write_atomic(os.path.join(a.dir, f"{n:04}.body"), body)
        write_atomic(os.path.join(a.dir, f"{n:04}.eml"), head.encode() + envelope.original_content)
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--refuse-first", type=int, default=0)
    args = p.parse_args()

    kw = {}
    if args.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*args.starttls)
        kw.update(tls_context=ctx, require_starttls=True)
    if args.user:
        def check(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
            # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kw.update(authenticator=check, auth_required=True, auth_require_tls=bool(args.starttls))
    handler = Sink(args)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(handler, hostname="sink.test", **kw), host="127.0.0.1", port=args.port)
        write_atomic(os.path.join(args.dir, "ready"), b"")
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
