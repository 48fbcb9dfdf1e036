"""Calling any RPC of the service with raw bytes, and the contract every answer to
hostile input must keep (OPERATIONS.md, "Hostile input")."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from orgs.v1 import organization_service_pb2 as rpc

SERVICE = rpc.DESCRIPTOR.services_by_name["OrganizationService"]
METHODS: list[MethodDescriptor] = list(SERVICE.methods)
CALL_TIMEOUT_SECONDS = 10.0
FORBIDDEN_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
MAX_ECHO = 64
MAX_ERROR_BYTES = 4096
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(method.input_type)


def response_class(method: MethodDescriptor) -> type[Message]:
    return message_factory.GetMessageClass(method.output_type)


def parsed_request(method: MethodDescriptor, payload: bytes) -> Message | None:
    """The method's request decoded from these bytes as the server would (UTF-8 in
    string fields checked), or None when they do not parse."""
    try:
        return request_class(method).FromString(payload)
    except DecodeError:
        return None


@dataclass(frozen=True)
class Caller:
    """Who makes a call: a bearer token (valid or not), or none."""

    name: str
    token: str | None
    authenticated: bool

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        # Hypothesis prints drawn callers in failure reports: the name says enough.
        printer.text(f"Caller({self.name!r})")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token is not None else ()


@dataclass(frozen=True)
class Outcome:
    """A call's status, its error details (grpc-status-details-bin) and, for a unary
    answer, the response bytes."""

    code: grpc.StatusCode
    message: str
    details: bytes
    response: bytes = b""

    def describe(self) -> str:
        return f"{self.code.name}: {self.message[:300]!r}"


STREAM_SECONDS = 1.0


def call(
    channel: grpc.Channel, method: MethodDescriptor, payload: bytes, caller: Caller
) -> Outcome:
    """Sends `payload` as the request bytes (no serializers: bytes go out as they are),
    whatever the method's kind of streaming; streamed answers are read to the end."""
    path = method_path(method)
    # A valid watch never ends by itself: streams get a short deadline, which then ends
    # them with DEADLINE_EXCEEDED (what matters is how invalid ones end).
    timeout = STREAM_SECONDS if method.server_streaming else CALL_TIMEOUT_SECONDS
    options: dict[str, Any] = {"metadata": caller.metadata(), "timeout": timeout}
    response = b""
    try:
        if method.client_streaming and method.server_streaming:
            stream_stream: grpc.StreamStreamMultiCallable[bytes, bytes]
            stream_stream = channel.stream_stream(path)
            list(stream_stream(iter([payload]), **options))
        elif method.client_streaming:
            stream_unary: grpc.StreamUnaryMultiCallable[bytes, bytes]
            stream_unary = channel.stream_unary(path)
            response = stream_unary(iter([payload]), **options)
        elif method.server_streaming:
            unary_stream: grpc.UnaryStreamMultiCallable[bytes, bytes]
            unary_stream = channel.unary_stream(path)
            list(unary_stream(payload, **options))
        else:
            unary_unary: grpc.UnaryUnaryMultiCallable[bytes, bytes]
            unary_unary = channel.unary_unary(path)
            response = unary_unary(payload, **options)
    except grpc.RpcError as error:
        return _outcome_of(error)
    return Outcome(grpc.StatusCode.OK, "", b"", response)


def _outcome_of(error: Any) -> Outcome:
    trailers = error.trailing_metadata() or ()
    details = b"".join(bytes(value) for key, value in trailers if key == STATUS_DETAILS_KEY)
    return Outcome(error.code(), error.details() or "", details)


def strings_in(message: Message) -> list[str]:
    """Every string value in a message, nested ones and map keys included."""
    found: list[str] = []
    for descriptor, value in message.ListFields():
        items = value.items() if _is_map(descriptor) else None
        if items is not None:
            for key, item in items:
                found.extend(_strings_of(key))
                found.extend(_strings_of(item))
        elif descriptor.is_repeated:
            for item in value:
                found.extend(_strings_of(item))
        else:
            found.extend(_strings_of(value))
    return found


def _strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Message):
        return strings_in(value)
    return []


def _is_map(descriptor: FieldDescriptor) -> bool:
    return descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry


def longest_echo(values: Sequence[str], error_text: str) -> str:
    """The first run of more than MAX_ECHO characters of any value that the error text
    repeats (verbatim or as Python would escape it), else ''."""
    window = MAX_ECHO + 1
    if len(error_text) < window:
        return ""
    # Any shared run of `window` characters contains one of the value's pieces of
    # length `half + 1` that start at a multiple of `half`: look those up first.
    half = window // 2
    pieces = {error_text[i : i + half + 1] for i in range(len(error_text) - half)}
    for value in {v for v in values if len(v) >= window}:
        for spelling in (value, repr(value)[1:-1]):
            for start in range(0, len(spelling) - half, half):
                if spelling[start : start + half + 1] in pieces:
                    last = min(start, len(spelling) - window)
                    for i in range(max(0, start - half), last + 1):
                        if spelling[i : i + window] in error_text:
                            return spelling[i : i + window]
    return ""


def contract_violations(outcome: Outcome, request_strings: Sequence[str]) -> list[str]:
    """What in this answer breaks the hostile-input contract (empty: nothing)."""
    problems = []
    if outcome.code in FORBIDDEN_CODES:
        problems.append(f"status {outcome.describe()}")
    if outcome.code != grpc.StatusCode.OK:
        size = len(outcome.message.encode()) + len(outcome.details)
        if size >= MAX_ERROR_BYTES:
            problems.append(f"error message and details take {size} bytes (limit 4 KiB)")
        text = outcome.message + outcome.details.decode("utf-8", errors="replace")
        echo = longest_echo(request_strings, text)
        if echo:
            problems.append(f"error echoes more than {MAX_ECHO} characters: {echo[:80]!r}")
    return problems


class ServerLog(logging.Handler):
    """Collects the WARNING-or-worse records the in-process server logs during a call,
    to say in a failure what the server saw (the last frame of any traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        """Yields a list that, after the block, summarizes what was logged in it."""
        self.records = []
        summary: list[str] = []
        root = logging.getLogger()
        root.addHandler(self)
        try:
            yield summary
        finally:
            root.removeHandler(self)
            summary.extend(_summarize(record) for record in self.records)


def _summarize(record: logging.LogRecord) -> str:
    """The record's message, and for an exception its first line, the frame that raised
    it and the last frame outside installed packages (usually the server's own code)."""
    line = f"{record.levelname} {record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        frames = traceback.extract_tb(error.__traceback__)
        first_line = (str(error).splitlines() or [""])[0][:200]
        line += f" | {type(error).__name__}: {first_line}"
        own = [frame for frame in frames if "site-packages" not in frame.filename]
        places = [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in own[-1:]]
        places += [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames[-1:]]
        for place in dict.fromkeys(places):
            line += f" | at {place}"
    return line


def health_statuses(channel: grpc.Channel, services: Sequence[str]) -> dict[str, str]:
    stub = health_pb2_grpc.HealthStub(channel)
    statuses = {}
    for service in services:
        response = stub.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT_SECONDS
        )
        statuses[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return statuses
