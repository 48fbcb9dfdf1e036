"""TXT lookups through a DNS resolver (dnspython): the system's, or `--dns-resolver`.

Answers that say "there is no such record" (NXDOMAIN, no TXT data, a name too long to
exist) are empty results; a resolver that fails, refuses or stays silent is
DNS_UNAVAILABLE, so callers can tell "not verified" from "could not check".

The lookup runs on dnspython's asyncio resolver under `asyncio.wait_for` (on the server's
loop, or one of the calling thread's own: `runners.run_coroutine`): the synchronous
resolver sleeps between retries past its lifetime, while a timeout here must hold to the
millisecond.
"""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from orgservice.config import parse_resolver_address
from orgservice.domain.errors import DnsUnavailable
from orgservice.storage.runners import run_coroutine

# The longest a single resolver attempt may take; the caller's timeout caps it further.
MAX_ATTEMPT_SECONDS = 2.0
_NO_SUCH_RECORD = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN)


class DnsTxtResolver:
    """`service.ports.TxtResolver` over dnspython; safe to share between threads (each
    lookup passes its own lifetime and the resolver keeps no cache)."""

    def __init__(self, address: str = "") -> None:
        """`address`: `HOST:PORT` of the resolver to ask; empty for the system's."""
        if address:
            host, port = parse_resolver_address(address)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                # No resolver configured: every lookup reports DNS_UNAVAILABLE.
                self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.timeout = MAX_ATTEMPT_SECONDS

    def txt_strings(self, name: str, timeout: float) -> list[str]:
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:  # too long or malformed: no record can exist
            return []
        if timeout <= 0:
            raise DnsUnavailable()
        try:
            answer = run_coroutine(self._resolve(qname, timeout))
        except _NO_SUCH_RECORD:
            return []
        except (dns.exception.DNSException, OSError, TimeoutError) as error:
            raise DnsUnavailable() from error
        found: list[str] = []
        for record in answer:
            parts = [part.decode("utf-8", "replace") for part in record.strings]
            found.extend(parts)
            if len(parts) > 1:
                found.append("".join(parts))
        return found

    async def _resolve(self, qname: dns.name.Name, timeout: float) -> dns.resolver.Answer:
        lookup = self._resolver.resolve(qname, "TXT", lifetime=timeout, search=False)
        return await asyncio.wait_for(lookup, timeout)
