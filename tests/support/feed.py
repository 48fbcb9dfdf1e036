"""WatchEvents helpers for tests: a watcher that reads a stream on a thread of its own,
and the audit log as the feed must replay it (oldest first)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import grpc
from orgs.v1 import organization_service_pb2 as rpc
from orgs.v1 import organization_service_pb2_grpc as rpc_grpc
from orgs.v1 import resources_pb2 as pb
from sqlalchemy import Engine
from sqlalchemy import text

from tests.support.clients import all_items
from tests.support.rpc_outcomes import error_reason

WAIT_SECONDS = 15.0


@dataclass
class Received:
    event: pb.AuditEvent
    cursor: str
    at: float  # time.monotonic() when it arrived


@dataclass
class Ended:
    code: grpc.StatusCode
    reason: str
    message: str


@dataclass
class Watcher:
    """WatchEvents(organization_id, start_cursor) read on a thread as responses arrive."""

    channel: grpc.Channel
    token: str
    organization_id: str = ""
    start_cursor: str = ""
    received: list[Received] = field(default_factory=list)
    ended: Ended | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        stub = rpc_grpc.OrganizationServiceStub(self.channel)
        self._call = stub.WatchEvents(
            rpc.WatchEventsRequest(
                organization_id=self.organization_id, start_cursor=self.start_cursor
            ),
            metadata=(("authorization", f"Bearer {self.token}"),),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self._call:
                with self._lock:
                    self.received.append(
                        Received(response.event, response.cursor, time.monotonic())
                    )
                    self._lock.notify_all()
            ending = Ended(grpc.StatusCode.OK, "", "")
        except grpc.RpcError as error:
            ending = Ended(error.code(), error_reason(error), error.details() or "")  # type: ignore[attr-defined]
        with self._lock:
            self.ended = ending
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Received]:
        """The first `count` responses; fails when they do not arrive in time."""
        with self._lock:
            arrived = self._lock.wait_for(
                lambda: len(self.received) >= count or self.ended is not None, timeout
            )
            assert arrived, f"{len(self.received)} of {count} events within {timeout}s"
            assert len(self.received) >= count, f"ended early: {self.ended}"
            return self.received[:count]

    def wait_for_event(
        self, matches: Callable[[pb.AuditEvent], bool], timeout: float = WAIT_SECONDS
    ) -> Received:
        """The first response whose event `matches`; fails when none arrives in time."""
        with self._lock:
            self._lock.wait_for(
                lambda: self.ended is not None or any(matches(r.event) for r in self.received),
                timeout,
            )
            found = [r for r in self.received if matches(r.event)]
            assert found, f"no such event within {timeout}s (ended: {self.ended})"
            return found[0]

    def wait_for_end(self, timeout: float = WAIT_SECONDS) -> Ended:
        with self._lock:
            self._lock.wait_for(lambda: self.ended is not None, timeout)
            assert self.ended is not None, f"the stream did not end within {timeout}s"
            return self.ended

    def ids(self) -> list[str]:
        with self._lock:
            return [r.event.id for r in self.received]

    def cancel(self) -> None:
        self._call.cancel()
        self._thread.join(WAIT_SECONDS)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def audit_log(client: Any, organization_id: str) -> dict[str, pb.AuditEvent]:
    """Every event of the organization as ListAuditEvents shows it, by id."""
    events = all_items(
        lambda token: client.ListAuditEvents(
            rpc.ListAuditEventsRequest(
                organization_id=organization_id, page_size=1000, page_token=token
            )
        ),
        "events",
    )
    return {event.id: event for event in events}


def commit_order(engine: Engine, organization_id: str) -> list[str]:
    """The organization's event ids in commit order (their sequence numbers), read
    from the database: the API shows no sequence numbers, and creation times follow
    the start of transactions rather than their commits."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id FROM audit_events WHERE organization_id = :o ORDER BY seq"),
            {"o": organization_id},
        )
        return [str(row[0]) for row in rows]
