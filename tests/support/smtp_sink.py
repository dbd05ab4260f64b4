#!/usr/bin/env python3
"""A tiny SMTP server for tests (standard library only).

Usage: smtp_sink.py OUT_DIR [--reject-rcpt ADDRESS]...

Listens on 127.0.0.1 on a free port, prints "listening PORT" on stdout, and
writes every accepted message to OUT_DIR/NNNNNN.json as
{"mail_from", "rcpt_to", "data"} (written to a temporary name, then renamed,
so a reader never sees half a file). Recipients given with --reject-rcpt
are refused with 550.
"""
import asyncio
import json
import os
import sys
import time


class Session:
    def __init__(self, out_dir, reject, counter):
        self.out_dir, self.reject, self.counter = out_dir, reject, counter
        self.reset()

    def reset(self):
        self.mail_from, self.rcpt_to = None, []

    async def handle(self, reader, writer):
        def send(line):
            writer.write((line + "\r\n").encode())

        send("220 sink ESMTP")
        await writer.drain()
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("HELO", "EHLO"):
                send("250 sink")
            elif verb == "MAIL":
                self.mail_from = line.split(":", 1)[1].strip().strip("<>")
                send("250 ok")
            elif verb == "RCPT":
                rcpt = line.split(":", 1)[1].strip().strip("<>")
                if rcpt in self.reject:
                    send("550 no such user")
                else:
                    self.rcpt_to.append(rcpt)
                    send("250 ok")
            elif verb == "DATA":
                send("354 end with .")
                await writer.drain()
                lines = []
                while True:
                    l = (await reader.readline()).decode("utf-8", "replace")
                    if l in (".\r\n", ".\n", ""):
                        break
                    if l.startswith(".."):
                        l = l[1:]
                    lines.append(l)
                self.counter[0] += 1
                n = self.counter[0]
                path = os.path.join(self.out_dir, "%06d.json" % n)
                with open(path + ".tmp", "w") as f:
                    json.dump({"mail_from": self.mail_from, "rcpt_to": self.rcpt_to,
                               "data": "".join(lines), "received_at": time.time()}, f)
                os.rename(path + ".tmp", path)
                self.reset()
                send("250 queued as %d" % n)
            elif verb == "RSET":
                self.reset()
                send("250 ok")
            elif verb == "NOOP":
                send("250 ok")
            elif verb == "QUIT":
                send("221 bye")
                await writer.drain()
                break
            else:
                send("502 not implemented")
            await writer.drain()
        writer.close()


async def main():
    out_dir = sys.argv[1]
    reject = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--reject-rcpt"]
    counter = [0]
    server = await asyncio.start_server(
        lambda r, w: Session(out_dir, reject, counter).handle(r, w), "127.0.0.1", 0)
    print("listening %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
