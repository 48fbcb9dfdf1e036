"""Hypothesis strategies derived from protobuf descriptors: any request message of the
service, with hostile but well-typed values in its fields, and real values (ids of
existing resources, role names, tokens) mixed in so requests get past "not found".

Nothing here names an RPC: a new RPC or field is fuzzed as soon as the generated code
has it. Which real values a field gets is chosen by the field's name (see `RealValues`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
LONG_LIST_SIZES = (101, 150)
# Lengths at and just past the contract's limits, and far beyond them (~64 KB).
EDGE_LENGTHS = (63, 64, 65, 200, 201, 256, 257, 2000, 2001, 4096, 65_536)
MAX_TEXT_LENGTH = 65_536
MAX_RAW_PREFIX = 256 * 1024
# Cc characters (NUL first: it breaks PostgreSQL text) plus separators that are not Cc.
CONTROL_CHARACTERS = "\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x7f\x85\x9f\u2028\u2029"
# Characters with a meaning in SQL, LIKE patterns, paths and field masks.
SYNTAX_SNIPPETS = ("%", "_", "'", '"', "\\", "%%", "' OR '1'='1", "--", "*", ".", "..", "/", " ")
# Valid range of google.protobuf.Timestamp (0001-01-01 to 9999-12-31) and Duration.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
DURATION_SECONDS = 315_576_000_000
NANOS_PER_SECOND = 1_000_000_000
INT_RANGES: Mapping[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class RealValues:
    """Values that exist on the server, offered to fields by name: first by the field's
    full name (`orgs.v1.Workspace.id`), then by its short name (`organization_id`).
    Fields without an entry may still get any of them."""

    by_field: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def for_field(self, descriptor: FieldDescriptor) -> Sequence[str]:
        return self.by_field.get(descriptor.full_name) or self.by_field.get(descriptor.name, ())

    def everything(self) -> list[str]:
        return sorted({value for values in self.by_field.values() for value in values})


def uuid_spellings(value: str) -> list[str]:
    """A UUID as the contract accepts it (any case, hyphenated) and as it does not."""
    return [
        value,
        value.upper(),
        "{" + value + "}",
        "urn:uuid:" + value,
        value.replace("-", ""),
        value.upper().replace("-", ""),
        f" {value} ",
        value + "\x00",
    ]


def _repeat_to(length: int, seed: str) -> str:
    return (seed * (length // len(seed) + 1))[:length]


def texts() -> st.SearchStrategy[str]:
    """Strings a client could send: empty, plain, unicode, control characters, SQL and
    LIKE syntax, UUIDs in every spelling, and very long ones."""
    printable = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    uuids = st.uuids().map(str)
    return st.one_of(
        st.just(""),
        st.text(printable, min_size=1, max_size=24),
        st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True),
        st.text(st.sampled_from(CONTROL_CHARACTERS + "ab"), min_size=1, max_size=8),
        st.lists(st.sampled_from(SYNTAX_SNIPPETS), min_size=1, max_size=4).map("".join),
        st.builds(lambda u, i: uuid_spellings(u)[i], uuids, st.integers(0, 7)),
        st.builds(
            _repeat_to,
            st.one_of(
                st.sampled_from(EDGE_LENGTHS),
                st.integers(0, MAX_TEXT_LENGTH),
                st.integers(MAX_TEXT_LENGTH // 2, MAX_TEXT_LENGTH),
            ),
            st.text(st.characters(codec="utf-8"), min_size=1, max_size=4),
        ),
    )


def real_or_hostile(real: Sequence[str], elsewhere: Sequence[str]) -> st.SearchStrategy[str]:
    """A field's own real values (as they are, or re-spelled: upper case, braces, a NUL
    appended...) half of the time, else hostile text; fields without real values of
    their own get hostile text, sometimes a real value meant for another field."""
    if not real:
        return st.one_of(texts(), texts(), st.sampled_from(elsewhere)) if elsewhere else texts()
    exact = st.sampled_from(real)
    respelled = st.builds(lambda v, i: uuid_spellings(v)[i], exact, st.integers(1, 7))
    return st.one_of(exact, exact, respelled, texts(), texts())


def integers(field_type: int) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[field_type]
    edges = sorted({low, high, -1 if low < 0 else 0, 0, 1, 50, 1000, 1001})
    return st.one_of(
        st.sampled_from(edges),
        st.integers(-10, 2000).filter(lambda n: low <= n <= high),
        st.integers(low, high),
    )


def timestamps(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Timestamps near now, anywhere valid, out of range, and with bad nanos."""
    now = int(time.time())
    day = 86_400
    seconds = st.one_of(
        st.integers(now - 40 * day, now + 40 * day),
        st.integers(*TIMESTAMP_SECONDS),
        st.sampled_from([TIMESTAMP_SECONDS[0] - 1, TIMESTAMP_SECONDS[1] + 1, 0, -1, 2**63 - 1]),
        st.integers(-(2**63), 2**63 - 1),
    )
    nanos = st.one_of(
        st.integers(0, NANOS_PER_SECOND - 1),
        st.sampled_from([-1, NANOS_PER_SECOND, 2**31 - 1, -(2**31)]),
    )
    return st.builds(cls, seconds=seconds, nanos=nanos)


def durations(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Durations of plausible size, at and past the valid range, and with nanos of the
    wrong sign or magnitude."""
    seconds = st.one_of(
        st.integers(-10, 40 * 86_400),
        # Past the valid range, and past what a Python timedelta holds (~8.6e13 s).
        st.sampled_from([DURATION_SECONDS + 1, -DURATION_SECONDS - 1, 10**14, 2**63 - 1]),
        st.integers(-(2**63), 2**63 - 1),
    )
    nanos = st.one_of(
        st.integers(-(NANOS_PER_SECOND - 1), NANOS_PER_SECOND - 1),
        st.sampled_from([NANOS_PER_SECOND, -NANOS_PER_SECOND, 2**31 - 1, -(2**31)]),
    )
    return st.builds(cls, seconds=seconds, nanos=nanos)


def field_masks(cls: type[Message], container: Descriptor) -> st.SearchStrategy[Message]:
    """Masks naming fields of the sibling resources (as the update RPCs expect), nested
    paths, `*`, unknown paths, and more paths than any resource has."""
    known = sorted(
        {
            name
            for sibling in container.fields
            if sibling.message_type is not None
            for child in sibling.message_type.fields
            for name in (child.name, f"{sibling.name}.{child.name}", f"{child.name}.x")
        }
    )
    path = st.one_of(st.sampled_from(known or ["name"]), st.just("*"), texts())
    many = st.builds(lambda n, p: [f"{p}{i}" for i in range(n)], st.integers(21, 40), path)
    return st.builds(cls, paths=st.one_of(st.lists(path, max_size=4), many))


def structs(cls: type[Message], _container: Descriptor) -> st.SearchStrategy[Message]:
    """JSON objects (google.protobuf.Struct is recursive, so it gets a strategy of its own
    with bounded nesting): hostile keys and strings, NaN and infinities, deep nesting."""
    scalars = st.one_of(st.none(), st.booleans(), st.floats(), texts())
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(texts(), inner, max_size=4)
        ),
        max_leaves=12,
    )

    def build(document: dict[str, Any]) -> Message:
        message = cls()
        message.update(document)  # type: ignore[attr-defined]
        return message

    return st.builds(build, st.dictionaries(texts(), values, max_size=5))


def _is_map(descriptor: FieldDescriptor) -> bool:
    return descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry


def _is_resource(descriptor: FieldDescriptor) -> bool:
    """A field holding a message of the service's own (no map, no well-known type)."""
    nested = descriptor.message_type
    return nested is not None and not _is_map(descriptor) and nested.full_name not in WELL_KNOWN


def _message_type(descriptor: FieldDescriptor) -> Descriptor:
    assert descriptor.message_type is not None, f"{descriptor.full_name} is no message"
    return descriptor.message_type


WellKnown = Callable[[type[Message], Descriptor], st.SearchStrategy[Message]]
WELL_KNOWN: Mapping[str, WellKnown] = {
    "google.protobuf.Timestamp": lambda cls, _container: timestamps(cls),
    "google.protobuf.Duration": lambda cls, _container: durations(cls),
    "google.protobuf.FieldMask": field_masks,
    "google.protobuf.Struct": structs,
}


class RequestStrategies:
    """Strategies for the messages of one set of real values, built once per type.

    Half of the messages are hostile in every field they set; the other half are
    "focused": real values where there are any, and one field (nested ones included)
    hostile, so that a field's bug is not hidden behind another field's rejection."""

    def __init__(self, real: RealValues) -> None:
        self._real = real
        self._anything_real = real.everything()
        self._hostile = functools.cache(self._hostile_message)
        self._calm = functools.cache(self._calm_message)
        self._focused = functools.cache(self._focused_message)

    def message(self, descriptor: Descriptor) -> st.SearchStrategy[Any]:
        """Messages of this type, focused or hostile throughout."""
        return st.one_of(self._focused(descriptor, MAX_DEPTH), self._hostile(descriptor, MAX_DEPTH))

    def _calm_message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        """Only real values: the field's own for singular strings, calm nested messages."""
        cls = message_factory.GetMessageClass(descriptor)
        fields: dict[FieldDescriptor, st.SearchStrategy[Any]] = {}
        for f in descriptor.fields:
            if f.is_repeated or _is_map(f) or f.containing_oneof is not None:
                continue
            real = self._real.for_field(f) if f.type == FieldDescriptor.TYPE_STRING else ()
            if real:
                fields[f] = st.sampled_from(real)
            elif _is_resource(f) and depth > 0:
                fields[f] = self._calm(_message_type(f), depth - 1)
        # The first oneof member with real values names the thing (an id before a slug).
        oneofs = []
        for oneof in descriptor.oneofs:
            named = [f for f in oneof.fields if self._real.for_field(f)]
            if named:
                oneofs.append(
                    st.tuples(st.just(named[0]), st.sampled_from(self._real.for_field(named[0])))
                )
        return st.builds(
            functools.partial(_assemble, cls), st.fixed_dictionaries(fields), st.tuples(*oneofs)
        )

    def _focused_message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        calm = self._calm(descriptor, depth)
        fields = [f for f in descriptor.fields if f.message_type is None or depth > 0]
        if not fields:
            return calm

        def focus(field: FieldDescriptor) -> st.SearchStrategy[Any]:
            if _is_resource(field) and not field.is_repeated:
                value = self._focused(_message_type(field), depth - 1)
            else:
                value = self._value(field, descriptor, depth)
            return st.builds(_with, calm, st.just(field), value)

        return st.sampled_from(fields).flatmap(focus)

    def _hostile_message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        cls = message_factory.GetMessageClass(descriptor)
        in_oneof = {f.name for oneof in descriptor.oneofs for f in oneof.fields}
        plain = {
            f: self._value(f, descriptor, depth)
            for f in descriptor.fields
            if f.name not in in_oneof and (f.message_type is None or depth > 0 or _is_map(f))
        }
        # At most one member of each oneof, set even to its default (the case is then set).
        oneofs = [
            st.one_of(
                st.none(),
                *(st.tuples(st.just(f), self._value(f, descriptor, depth)) for f in o.fields),
            )
            for o in descriptor.oneofs
        ]
        return st.builds(
            functools.partial(_assemble, cls),
            st.fixed_dictionaries({}, optional=plain),
            st.tuples(*oneofs),
        )

    def _value(
        self, descriptor: FieldDescriptor, container: Descriptor, depth: int
    ) -> st.SearchStrategy[Any]:
        if _is_map(descriptor):
            entry = _message_type(descriptor)
            key_field = entry.fields_by_name["key"]
            keys = self._single(key_field, entry, depth)
            values = self._single(entry.fields_by_name["value"], entry, depth - 1)
            many = st.builds(
                lambda n, v: dict.fromkeys(_distinct_keys(key_field, n), v),
                st.integers(65, 130),
                values,
            )
            return st.one_of(st.dictionaries(keys, values, max_size=5), many)
        single = self._single(descriptor, container, depth - 1)
        if not descriptor.is_repeated:
            return single
        long_list = st.builds(_long_list, single, st.sampled_from(LONG_LIST_SIZES), st.booleans())
        return st.one_of(st.lists(single, max_size=5), long_list)

    def _single(
        self, descriptor: FieldDescriptor, container: Descriptor, depth: int
    ) -> st.SearchStrategy[Any]:
        kind = descriptor.type
        if kind in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            nested = _message_type(descriptor)
            special = WELL_KNOWN.get(nested.full_name)
            if special is not None:
                return special(message_factory.GetMessageClass(nested), container)
            return self._hostile(nested, max(depth, 0))
        if kind == FieldDescriptor.TYPE_STRING:
            return real_or_hostile(self._real.for_field(descriptor), self._anything_real)
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_ENUM:
            enum = descriptor.enum_type
            assert enum is not None
            known = [value.number for value in enum.values]
            if enum.is_closed:
                return st.sampled_from(known)
            return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
        if kind == FieldDescriptor.TYPE_FLOAT:
            return st.floats(width=32)
        if kind == FieldDescriptor.TYPE_DOUBLE:
            return st.floats()
        return integers(kind)


def _distinct_keys(key_field: FieldDescriptor, count: int) -> list[Any]:
    if key_field.type == FieldDescriptor.TYPE_STRING:
        return [f"key-{i}" for i in range(count)]
    if key_field.type == FieldDescriptor.TYPE_BOOL:
        return [False, True]
    return list(range(count))


def _long_list(element: Any, count: int, distinct: bool) -> list[Any]:
    """A list past the contract's size limits: one element repeated, or (for strings)
    numbered variants of it."""
    if distinct and isinstance(element, str):
        return [f"{element}{i}" for i in range(count)]
    return [element] * count


def _assemble(
    cls: type[Message],
    plain: Mapping[FieldDescriptor, Any],
    oneofs: Sequence[tuple[FieldDescriptor, Any] | None],
) -> Message:
    message = cls()
    chosen = dict(plain)
    chosen.update(choice for choice in oneofs if choice is not None)
    for descriptor, value in chosen.items():
        _assign(message, descriptor, value)
    return message


def _with(base: Message, descriptor: FieldDescriptor, value: Any) -> Message:
    """A copy of `base` with one field replaced."""
    message = type(base)()
    message.CopyFrom(base)
    message.ClearField(descriptor.name)
    _assign(message, descriptor, value)
    return message


def _assign(message: Message, descriptor: FieldDescriptor, value: Any) -> None:
    """Sets a field (setting a oneof member clears its siblings)."""
    target = getattr(message, descriptor.name)
    if _is_map(descriptor):
        if _message_type(descriptor).fields_by_name["value"].message_type is None:
            target.update(value)
        else:
            for key, item in value.items():
                target[key].CopyFrom(item)
    elif descriptor.is_repeated:
        target.extend(value)
    elif descriptor.message_type is not None:
        target.CopyFrom(value)
    else:
        setattr(message, descriptor.name, value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def invalid_utf8_payloads(descriptor: Descriptor, depth: int = MAX_DEPTH) -> list[bytes]:
    """Well-framed messages whose only fault is invalid UTF-8 in one string field (at
    any depth): parsers must reject them, as they reject broken framing."""
    payloads = []
    for child in descriptor.fields:
        if child.type == FieldDescriptor.TYPE_STRING:
            payloads.append(_length_delimited(child.number, b"ok\xff\xfe"))
        elif child.message_type is not None and depth > 0:
            payloads.extend(
                _length_delimited(child.number, inner)
                for inner in invalid_utf8_payloads(child.message_type, depth - 1)
            )
    return payloads


# Framing no parser accepts: an over-long varint, a length past the end, an end-group
# tag without a start, field number 0, a truncated fixed64.
BROKEN_FRAMING = (
    b"\x08" + b"\xff" * 10 + b"\x01",
    b"\x12\x7fshort",
    b"\x0c",
    b"\x00\x01",
    b"\x09\x01\x02",
)


def _mutate(valid: bytes, how: int, position: int, noise: bytes) -> bytes:
    # Far below gRPC's 4 MiB message limit, which would answer RESOURCE_EXHAUSTED first.
    valid = valid[:MAX_RAW_PREFIX]
    cut = position % (len(valid) + 1)
    if how == 0:
        return valid[:cut]
    if how == 1:
        return valid[:cut] + noise + valid[cut:]
    flipped = bytearray(valid or b"\x00")
    flipped[cut % len(flipped)] ^= 0xFF
    return bytes(flipped)


def raw_payloads(
    descriptor: Descriptor, valid_requests: st.SearchStrategy[Message]
) -> st.SearchStrategy[bytes]:
    """Bytes sent as a request: random, broken framing, invalid UTF-8 in string fields,
    and valid requests truncated, spliced with noise or with a byte flipped."""
    mutated = st.builds(
        _mutate,
        valid_requests.map(lambda message: message.SerializeToString()),
        st.integers(0, 2),
        st.integers(0, 2**16),
        st.binary(min_size=1, max_size=16),
    )
    crafted = [*BROKEN_FRAMING, *invalid_utf8_payloads(descriptor)]
    return st.one_of(st.binary(max_size=256), st.sampled_from(crafted), mutated)
