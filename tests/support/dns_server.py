"""A real DNS server for tests: dnslib's UDP server, in-process on a free local port.

Tests publish TXT records per name (optionally answered after a delay), or make a name
fail (SERVFAIL, REFUSED, or no answer at all); every other name is NXDOMAIN. Names are
unique per test, so one server serves a whole session. `queries` counts what was asked,
to check a lookup happened (or not).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from typing import Any

from dnslib import QTYPE
from dnslib import RCODE
from dnslib import RR
from dnslib import TXT
from dnslib import DNSError
from dnslib import DNSRecord
from dnslib.server import DNSLogger
from dnslib.server import DNSServer


class Failure(enum.Enum):
    SERVFAIL = "servfail"
    REFUSED = "refused"
    SILENT = "silent"  # the query is dropped: the resolver times out


class LocalDnsServer:
    def __init__(self) -> None:
        self._records: dict[str, list[list[str]]] = {}
        self._failures: dict[str, Failure] = {}
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self.queries: Counter[str] = Counter()
        quiet = DNSLogger(logf=lambda _line: None)
        self._server = DNSServer(self, address="127.0.0.1", port=0, logger=quiet)
        self.port: int = self._server.server.server_address[1]

    @property
    def address(self) -> str:
        """HOST:PORT, as --dns-resolver takes it."""
        return f"127.0.0.1:{self.port}"

    def publish(self, name: str, *records: str | list[str], delay: float = 0.0) -> None:
        """TXT records at `name`, answered after `delay` seconds; a record given as a
        list holds several strings."""
        with self._lock:
            self._records[_key(name)] = [[r] if isinstance(r, str) else r for r in records]
            self._delays[_key(name)] = delay

    def fail(self, name: str, failure: Failure) -> None:
        with self._lock:
            self._failures[_key(name)] = failure

    def resolve(self, request: DNSRecord, _handler: Any) -> DNSRecord:
        """dnslib's resolver interface: the reply to one query."""
        qname = str(request.q.qname)
        name = _key(qname)
        with self._lock:
            self.queries[name] += 1
            failure = self._failures.get(name)
            records = self._records.get(name)
            delay = self._delays.get(name, 0.0)
        time.sleep(delay)  # each query has a thread of its own
        if failure is Failure.SILENT:
            raise DNSError("dropped on purpose")  # dnslib sends nothing
        reply = request.reply()
        if failure is not None:
            reply.header.rcode = RCODE.SERVFAIL if failure is Failure.SERVFAIL else RCODE.REFUSED
        elif records is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for strings in records:
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(strings), ttl=60))
        return reply

    def start(self) -> LocalDnsServer:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()


def _key(name: str) -> str:
    return name.lower().rstrip(".")
