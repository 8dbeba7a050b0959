#!/usr/bin/env python3
"""Produces the syslog corpus with real clients: util-linux `logger` and Python's SysLogHandler.

Run from the repository root:  python3 tests/corpus/syslog/capture.py tests/corpus/syslog

It listens on 127.0.0.1 (UDP and TCP, ephemeral ports), sends every message below with the real
client, and writes for each case `<name>.log`, the messages exactly as received (one per line;
TCP frames without their LF, NUL or octet-count framing; a UDP datagram as is, including the NUL
that SysLogHandler appends), and `<name>.expect.jsonl`, one JSON object per message with the
fields the sender was asked to put in it. `tests/parse_corpus.rs` parses the first against the
second. Nothing else of the listener's is kept.
"""

import json
import logging
import logging.handlers
import os
import socket
import subprocess
import sys
import threading
import time

HOST = socket.gethostname()


class Listener:
    """Collects syslog messages on one UDP and one TCP port of 127.0.0.1."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.udp_port = self.udp.getsockname()[1]
        self.tcp_port = self.tcp.getsockname()[1]
        threading.Thread(target=self._udp_loop, daemon=True).start()
        threading.Thread(target=self._tcp_loop, daemon=True).start()

    def _add(self, message):
        with self.lock:
            self.messages.append(message)

    def _udp_loop(self):
        while True:
            datagram, _ = self.udp.recvfrom(65536)
            self._add(datagram)

    def _tcp_loop(self):
        while True:
            connection, _ = self.tcp.accept()
            threading.Thread(target=self._connection, args=(connection,), daemon=True).start()

    def _connection(self, connection):
        buffer = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            buffer += chunk
            buffer = self._frames(buffer)
        if buffer:
            self._add(buffer)

    def _frames(self, buffer):
        # RFC 6587: octet counting when a frame starts with a digit, else a trailer (LF or NUL).
        while buffer:
            if buffer[:1].isdigit():
                space = buffer.find(b" ")
                if space < 0:
                    return buffer
                length = int(buffer[:space])
                if len(buffer) < space + 1 + length:
                    return buffer
                self._add(buffer[space + 1 : space + 1 + length])
                buffer = buffer[space + 1 + length :]
            else:
                ends = [i for i in (buffer.find(b"\n"), buffer.find(b"\0")) if i >= 0]
                if not ends:
                    return buffer
                end = min(ends)
                self._add(buffer[:end])
                buffer = buffer[end + 1 :]
        return buffer

    def take(self, count, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    taken, self.messages = self.messages[:count], self.messages[count:]
                    return taken
            time.sleep(0.02)
        raise SystemExit(f"expected {count} messages, got {len(self.messages)}")


def logger(listener, transport, args, message):
    port = listener.udp_port if transport == "udp" else listener.tcp_port
    flag = "-d" if transport == "udp" else "-T"
    command = ["logger", flag, "-n", "127.0.0.1", "-P", str(port), *args, "--", message]
    subprocess.run(command, check=True)


# (file name, transport, logger options, message, expected fields). `sd` lists elements as
# [id, {param: value}]; `host` None means the field must be absent.
LOGGER_CASES = {
    "logger-rfc3164-udp": (
        "udp",
        [
            (["--rfc3164", "-t", "sshd", "--id=2101", "-p", "auth.info"],
             "Accepted publickey for deploy from 10.0.0.5 port 50432 ssh2",
             dict(facility="auth", severity="info", app="sshd", pid="2101")),
            (["--rfc3164", "-t", "postfix/smtpd", "--id=77", "-p", "mail.warning"],
             "warning: hostname mail.example.com does not resolve to address 192.0.2.7",
             dict(facility="mail", severity="warning", app="postfix/smtpd", pid="77")),
            (["--rfc3164", "-t", "kernel", "-p", "kern.crit"],
             "Out of memory: Killed process 4242 (java) total-vm:8123456kB",
             # logger will not forge the kernel's facility: kern becomes user.
             dict(facility="user", severity="crit", app="kernel")),
            (["--rfc3164", "-t", "app", "-p", "local7.debug"],
             "caf\u00e9 \u00fcn\u00efc\u00f8d\u00e9 \u2713 works",
             dict(facility="local7", severity="debug", app="app")),
        ],
    ),
    "logger-rfc3164-tcp": (
        "tcp",
        [
            (["--rfc3164", "-t", "CRON", "--id=991", "-p", "cron.info"],
             "(root) CMD (run-parts /etc/cron.hourly)",
             dict(facility="cron", severity="info", app="CRON", pid="991")),
            (["--rfc3164", "-t", "nginx", "-p", "local3.err"],
             '2026/06/15 10:00:00 [error] 7#7: *1 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.9, server: shop, request: "GET /cart HTTP/1.1"',
             dict(facility="local3", severity="err", app="nginx")),
        ],
    ),
    "logger-rfc5424-udp": (
        "udp",
        [
            (["--rfc5424", "-t", "shop", "--id=4242", "--msgid", "ORDER", "-p", "local0.err"],
             "order 17 failed: card declined",
             dict(facility="local0", severity="err", app="shop", pid="4242", msgid="ORDER",
                  sd_ids=["timeQuality"])),
            (["--rfc5424=notq", "-t", "shop", "-p", "user.notice"],
             "checkout completed in 183 ms",
             dict(facility="user", severity="notice", app="shop", sd=[])),
            (["--rfc5424=notime,notq", "-t", "batch", "--msgid", "NIGHTLY", "-p", "daemon.alert"],
             "disk /data 98% full",
             dict(facility="daemon", severity="alert", app="batch", msgid="NIGHTLY",
                  timestamp=False, sd=[])),
            (["--rfc5424=nohost,notq", "-t", "edge", "-p", "local5.emerg"],
             "power supply 2 failed",
             dict(facility="local5", severity="emerg", app="edge", host=None, sd=[])),
        ],
    ),
    "logger-rfc5424-sd-tcp": (
        "tcp",
        [
            (["--rfc5424=notq", "-t", "api", "--id=31337", "--msgid", "REQ", "-p", "local4.warning",
              "--sd-id", "origin@32473", "--sd-param", 'ip="10.0.0.1"',
              "--sd-param", 'software="api-gw"'],
             "slow request: GET /v1/orders took 2304 ms",
             dict(facility="local4", severity="warning", app="api", pid="31337", msgid="REQ",
                  sd=[["origin@32473", {"ip": "10.0.0.1", "software": "api-gw"}]])),
            (["--rfc5424=notq", "-t", "api", "--msgid", "AUTH", "-p", "authpriv.err",
              "--sd-id", "meta@32473", "--sd-param", r'quote="say \"hi\""',
              "--sd-param", r'path="C:\\temp\\x"', "--sd-param", r'bracket="a\]b"',
              "--sd-id", "exampleSDID@32473", "--sd-param", 'iut="3"',
              "--sd-param", 'eventSource="Application"'],
             "login failed for user ann",
             dict(facility="authpriv", severity="err", app="api", msgid="AUTH",
                  sd=[["meta@32473", {"quote": 'say "hi"', "path": "C:\\temp\\x",
                                      "bracket": "a]b"}],
                      ["exampleSDID@32473", {"iut": "3", "eventSource": "Application"}]])),
        ],
    ),
    "logger-rfc5424-octet-count-tcp": (
        "tcp",
        [
            (["--rfc5424", "--octet-count", "-t", "worker", "--id=555", "--msgid", "JOB",
              "-p", "local2.info", "--sd-id", "job@32473", "--sd-param", 'id="8f14e45f"'],
             "job 8f14e45f finished\twith a tab",
             dict(facility="local2", severity="info", app="worker", pid="555", msgid="JOB",
                  sd_ids=["timeQuality", "job@32473"])),
            (["--rfc5424", "--octet-count", "-t", "worker", "-p", "local2.debug"],
             "multi word message with = signs and [brackets] and \"quotes\"",
             dict(facility="local2", severity="debug", app="worker", sd_ids=["timeQuality"])),
        ],
    ),
}

PYTHON_LEVELS = [
    (logging.CRITICAL, "crit", "payment service unreachable after 5 retries"),
    (logging.ERROR, "err", "Traceback (most recent call last): ZeroDivisionError: division by zero"),
    (logging.WARNING, "warning", "queue depth 10432 above threshold 10000"),
    (logging.INFO, "info", "user ann logged in from 10.0.0.3"),
    (logging.DEBUG, "debug", "cache miss key=session:42"),
]


def python_case(listener, transport, style):
    """SysLogHandler as applications configure it: a tag formatter, `ident`, or nothing."""
    socktype = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    port = listener.udp_port if transport == "udp" else listener.tcp_port
    handler = logging.handlers.SysLogHandler(
        address=("127.0.0.1", port),
        facility=logging.handlers.SysLogHandler.LOG_LOCAL1,
        socktype=socktype,
    )
    log = logging.getLogger(f"billing.{transport}.{style}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    expectations = []
    if style == "tag-pid":
        handler.setFormatter(logging.Formatter("billing[%(process)d]: %(message)s"))
        fields = dict(app="billing", pid=str(os.getpid()))
    elif style == "ident":
        handler.ident = "billing: "
        fields = dict(app="billing")
    else:
        fields = dict(app=None)
    for level, severity, text in PYTHON_LEVELS:
        log.log(level, text)
        expectations.append(
            dict(message=text, facility="local1", severity=severity, host=None,
                 timestamp=False, protocol="3164", **fields)
        )
    handler.close()
    log.removeHandler(handler)
    return expectations


def write(directory, name, messages, expectations):
    with open(os.path.join(directory, f"{name}.log"), "wb") as out:
        for message in messages:
            out.write(message + b"\n")
    with open(os.path.join(directory, f"{name}.expect.jsonl"), "w", encoding="utf-8") as out:
        for expectation in expectations:
            out.write(json.dumps(expectation, ensure_ascii=False) + "\n")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__)
    listener = Listener()
    for name, (transport, cases) in LOGGER_CASES.items():
        expectations = []
        for args, message, fields in cases:
            logger(listener, transport, args, message)
            protocol = "3164" if "--rfc3164" in args else "5424"
            expected = dict(message=message, host=HOST, protocol=protocol, timestamp=True)
            expected.update(fields)
            expectations.append(expected)
        write(directory, name, listener.take(len(cases)), expectations)
    for transport in ("udp", "tcp"):
        for style in ("tag-pid", "ident", "plain"):
            expectations = python_case(listener, transport, style)
            name = f"python-syslog-handler-{style}-{transport}"
            write(directory, name, listener.take(len(expectations)), expectations)


if __name__ == "__main__":
    main()
