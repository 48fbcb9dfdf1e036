"""Runs RPC methods for grpc.aio: the call's budget, the caller, and where it runs.

The event loop never blocks: use cases (synchronous, talking to the database) run through
the storage's runner (`storage.runners`): in greenlets on the loop on PostgreSQL, on a
pool of threads on SQLite; at most `threads` at once. RPCs marked `answers_from_memory`
are first tried on the loop with a budget that forbids I/O, which the read cache usually
satisfies; when it cannot, storage raises WouldBlock before touching the database and
the call goes to the runner.

Mutations of one organization wait for each other here, without holding a turn: they
would queue on the organization's row lock anyway, and a locked row must not drain the
turns or the connection pool that unrelated calls need.

Server-streaming RPCs (`async def Rpc(self, request, stream)`, see `api.streams`) get
their caller here and do their database work through the stream.
"""

from __future__ import annotations

import asyncio
import functools
import math
import weakref
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message import Message
from grpc import aio

from orgservice.api.interceptors import CallGuard
from orgservice.api.interceptors import current_identity
from orgservice.api.interceptors import note_user
from orgservice.api.streams import Stream
from orgservice.api.streams import Streams
from orgservice.domain.budget import Budget
from orgservice.domain.budget import WouldBlock
from orgservice.domain.errors import CallDeadlineExceeded
from orgservice.domain.errors import InvalidArgument
from orgservice.domain.models import Call
from orgservice.service.registry import Services
from orgservice.storage.database import StaleConnection
from orgservice.storage.runners import Runner

# Waiting for database work ends this long after the budget: its own timeouts
# (statement, lock, watchdog) normally end it first, with a precise error.
_WORK_GRACE_SECONDS = 0.5
# At most this share of the turns serves streams at once (and at least one turn).
_STREAM_SHARE = 4
# Fields that name the organization (or the invitation) a mutation changes.
_GATE_FIELDS = ("organization_id", "invitation_id")
_GATE_RESOURCES = ("organization", "role", "workspace", "invitation")

Method = Callable[[Any, Call], Message]
T = TypeVar("T")


class Undecodable:
    """Stands in for a request whose bytes are not a valid message: grpcio answers
    INTERNAL when a deserializer raises, so ours never does."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def safe_deserializer(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError, RuntimeError):
            return Undecodable(message_type.DESCRIPTOR.full_name)

    return parse


@dataclass(frozen=True)
class Gate:
    """Where a mutation's request names what it changes, found once per method: string
    fields (`_GATE_FIELDS`), else the id of a resource message (`_GATE_RESOURCES`)."""

    fields: tuple[str, ...]
    resources: tuple[str, ...]

    @classmethod
    def of(cls, request: Descriptor) -> Gate:
        by_name = request.fields_by_name
        return cls(
            fields=tuple(
                name
                for name in _GATE_FIELDS
                if name in by_name and by_name[name].type == FieldDescriptor.TYPE_STRING
            ),
            resources=tuple(
                name
                for name in _GATE_RESOURCES
                if name in by_name and by_name[name].message_type is not None
            ),
        )

    def key(self, request: Message) -> str | None:
        for name in self.fields:
            value: str = getattr(request, name)
            if value:
                return value.lower()
        for resource in self.resources:
            if request.HasField(resource):
                nested = getattr(request, resource)
                value = getattr(nested, "organization_id", "") or getattr(nested, "id", "")
                if value:
                    return str(value).lower()
        return None


@dataclass(frozen=True)
class Rpc:
    name: str
    method: Method
    memory_first: bool
    gate: Gate | None  # None: not a mutation, or one that must not wait in line


class Gates:
    """Per-key locks held across awaits, created on demand and dropped when unused."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: str, budget: Budget) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout=budget.remaining())
        except TimeoutError as error:
            raise CallDeadlineExceeded() from error
        try:
            yield
        finally:
            lock.release()


class Dispatcher:
    def __init__(
        self,
        services: Services,
        guard: CallGuard,
        *,
        runner: Runner,
        threads: int,
        max_call_seconds: float,
    ) -> None:
        self._services = services
        self._guard = guard
        self._max_call_seconds = max_call_seconds
        self._runner = runner
        self._gates = Gates()
        self.streams = Streams(
            run=lambda budget, work: self.with_database(budget, lambda: _retrying_stale(work)),
            turns=max(1, threads // _STREAM_SHARE),
            max_call_seconds=max_call_seconds,
        )

    def handlers(self, service: ServiceDescriptor, servicer: object) -> grpc.GenericRpcHandler:
        """grpc handlers for every method of `service`, from `servicer`'s methods of the
        same names; a method the servicer lacks is an error at start-up."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for descriptor in service.methods:
            handlers[descriptor.name] = self._handler(service, descriptor, servicer)
        return grpc.method_handlers_generic_handler(service.full_name, handlers)

    def _handler(
        self, service: ServiceDescriptor, descriptor: MethodDescriptor, servicer: object
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = getattr(servicer, descriptor.name, None)
        if method is None:
            raise TypeError(f"the servicer implements no {descriptor.full_name}")
        request_type = _message_class(descriptor.input_type)
        serialize = _message_class(descriptor.output_type).SerializeToString
        full_name = f"/{service.full_name}/{descriptor.name}"
        if descriptor.server_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._guard.stream(full_name, functools.partial(self.stream, method)),
                request_deserializer=safe_deserializer(request_type),
                response_serializer=serialize,
            )
        rpc = Rpc(
            name=descriptor.name,
            method=method,
            memory_first=bool(getattr(method, "memory_first", False)),
            gate=None
            if descriptor.name.startswith(("Get", "List", "Check"))
            or getattr(method, "ungated", False)
            else Gate.of(descriptor.input_type),
        )

        async def unary(
            request: Message | Undecodable, context: aio.ServicerContext[Any, Any]
        ) -> Message:
            return await self.run(rpc, request, context)

        return grpc.unary_unary_rpc_method_handler(
            self._guard.unary(full_name, unary),
            request_deserializer=safe_deserializer(request_type),
            response_serializer=serialize,
        )

    def budget(self, context: aio.ServicerContext[Any, Any]) -> Budget:
        """The client's deadline, capped by --max-call-seconds."""
        remaining = context.time_remaining()
        if remaining is None or math.isinf(remaining):
            remaining = self._max_call_seconds
        return Budget(min(remaining, self._max_call_seconds))

    async def run(
        self, rpc: Rpc, request: Message | Undecodable, context: aio.ServicerContext[Any, Any]
    ) -> Message:
        if isinstance(request, Undecodable):
            raise InvalidArgument(f"the request is not a valid {request.type_name} message")
        budget = self.budget(context)
        if rpc.memory_first:
            try:
                return self._call(rpc, request, budget.no_io())
            except WouldBlock:
                pass
        key = rpc.gate.key(request) if rpc.gate else None
        if key is None:
            return await self._use_case(rpc, request, budget)
        async with self._gates.hold(key, budget):
            return await self._use_case(rpc, request, budget)

    async def stream(
        self,
        method: Callable[[Message, Stream], AsyncIterator[Message]],
        request: Message | Undecodable,
        _context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Message]:
        if isinstance(request, Undecodable):
            raise InvalidArgument(f"the request is not a valid {request.type_name} message")
        identity = current_identity()
        caller = await self.streams.run(
            functools.partial(self._services.identities.caller_for, identity)
        )
        note_user(caller.user_id)
        async for response in method(request, Stream(caller, self.streams)):
            yield response

    async def with_database(self, budget: Budget, work: Callable[[], Any]) -> Any:
        """Runs `work` through the runner within `budget`."""
        try:
            # asyncio.timeout, not wait_for: no task of its own around every call.
            async with asyncio.timeout(budget.remaining() + _WORK_GRACE_SECONDS):
                return await self._runner.run(work)
        except TimeoutError as error:
            budget.cancel()
            raise CallDeadlineExceeded() from error
        except asyncio.CancelledError:
            budget.cancel()  # the client went away: the work must not commit
            raise

    async def _use_case(self, rpc: Rpc, request: Message, budget: Budget) -> Message:
        result: Message = await self.with_database(
            budget,
            functools.partial(_retrying_stale, functools.partial(self._call, rpc, request, budget)),
        )
        return result

    def _call(self, rpc: Rpc, request: Message, budget: Budget) -> Message:
        caller = self._services.identities.caller_for(current_identity(), budget)
        note_user(caller.user_id)
        return rpc.method(request, Call(caller, budget))


def _retrying_stale(work: Callable[[], T]) -> T:
    try:
        return work()
    except StaleConnection:
        # A pooled connection died (e.g. the database restarted) before its first
        # statement ran: nothing happened, so one retry on a fresh one is safe.
        return work()


def _message_class(descriptor: Any) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def iter_methods(service: ServiceDescriptor) -> Iterator[MethodDescriptor]:
    yield from service.methods
