"""The process's log output: lines the formatter would write, in batches that stay whole
on a shared pipe, and the access log's shortcut only where nothing else reads records."""

from __future__ import annotations

import io
import json
import logging
import select
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from orgservice.telemetry import logging as log_setup
from orgservice.telemetry.logging import LogOutput
from orgservice.telemetry.logging import log_fields
from tests.support.processes import poll

FIELDS = {
    "method": "/orgs.v1.OrganizationService/GetOrganization",
    "code": "OK",
    "duration_ms": 1.234,
    "user_id": "",
    "correlation_id": "req-1",
    "trace_id": "",
}
MESSAGE = "method=/orgs.v1.OrganizationService/GetOrganization code=OK déjà 100%"


class Stream(io.StringIO):
    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.failures = failures

    def write(self, text: str) -> int:
        if self.failures:
            self.failures -= 1
            raise ValueError("I/O operation on closed file")
        self.writes.append(text)
        return super().write(text)


def wait_for(stream: Stream, text: str) -> None:
    poll(lambda: stream.getvalue() == text, 5, f"{text!r} to be written")


@pytest.fixture
def stream() -> Stream:
    return Stream()


@contextmanager
def sole_root_handler(output: LogOutput) -> Iterator[None]:
    """`output` as the root logger's only handler, as configure_logging leaves it (for
    the test's body: pytest adds handlers of its own around each test)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [output]
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("now", [1_795_000_000.0, 1_795_000_000.999, 1_795_000_059.5004])
def test_a_line_is_what_the_formatter_writes(
    log_format: str, now: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = LogOutput(log_format, io.StringIO())
    record = logging.getLogger("orgservice.access").makeRecord(
        "orgservice.access", logging.INFO, __file__, 1, MESSAGE, (), None, extra=FIELDS
    )
    record.created = now
    record.msecs = int((now - int(now)) * 1000) + 0.0
    monkeypatch.setattr(time, "time", lambda: now)

    line = output.line("orgservice.access", logging.INFO, MESSAGE, FIELDS)

    assert line == output.format(record)
    if log_format == "json":
        assert json.loads(line)["correlation_id"] == "req-1"


def test_lines_below_warning_wait_for_the_batch(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.write_line("first")
    output.write_line("second")
    assert stream.getvalue() == ""
    output.flush()
    assert stream.writes == ["first\nsecond\n"]


def test_a_warning_is_written_at_once_after_the_lines_before_it(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.write_line("access")
    output.write_line("trouble", urgent=True)
    assert stream.writes == ["access\ntrouble\n"]


def test_a_quiet_batch_is_written_soon(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.write_line("alone")
    wait_for(stream, "alone\n")
    output.write_line("again")  # a later line is written by the same flusher
    wait_for(stream, "alone\nagain\n")


def test_a_failed_write_loses_its_batch_but_not_later_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    def report_fails_too(_record: logging.LogRecord) -> None:
        raise ValueError("I/O operation on closed file")  # stderr is closed: so is the report

    stream = Stream(failures=1)
    output = LogOutput("text", stream)
    monkeypatch.setattr(output, "handleError", report_fails_too)
    output.write_line("lost")
    time.sleep(log_setup.FLUSH_SECONDS * 3)
    output.write_line("kept")
    wait_for(stream, "kept\n")


def test_logging_shutdown_writes_the_pending_batch(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.write_line("last words")
    logging.shutdown([weakref.ref(output)])
    assert stream.getvalue() == "last words\n"


def test_every_write_holds_whole_lines_within_pipe_buf(stream: Stream) -> None:
    output = LogOutput("text", stream)
    lines = [f"line {n} " + "é" * (n % 97) for n in range(400)]
    for line in lines:
        output.write_line(line)
    output.flush()
    assert len(stream.writes) > 1
    for written in stream.writes:
        assert written.endswith("\n")
        assert len(written.encode()) <= select.PIPE_BUF
    assert stream.getvalue().splitlines() == lines


def test_the_access_log_goes_straight_to_the_sole_output(
    stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_records(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the line went through logging")

    access = logging.getLogger("orgservice.access")
    monkeypatch.setattr(access, "log", no_records)
    output = LogOutput("text", stream)
    with sole_root_handler(output):
        log_fields(access, logging.INFO, MESSAGE, FIELDS)
    output.flush()
    assert stream.getvalue().endswith(f" orgservice.access: {MESSAGE}\n")


def test_the_access_log_makes_records_when_someone_else_reads_them(
    stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    output = LogOutput("text", stream)
    with sole_root_handler(output):
        logging.getLogger().addHandler(caplog.handler)
        log_fields(logging.getLogger("orgservice.access"), logging.INFO, MESSAGE, FIELDS)
    output.flush()
    [record] = [r for r in caplog.records if r.name == "orgservice.access"]
    assert record.getMessage() == MESSAGE
    assert record.__dict__["correlation_id"] == "req-1"
    assert stream.getvalue().endswith(f" orgservice.access: {MESSAGE}\n")


def test_the_access_log_obeys_the_output_s_level(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.setLevel(logging.WARNING)
    with sole_root_handler(output):
        log_fields(logging.getLogger("orgservice.access"), logging.INFO, MESSAGE, FIELDS)
    output.flush()
    assert stream.getvalue() == ""


def test_a_line_the_stream_cannot_encode_never_raises_into_the_caller(stream: Stream) -> None:
    output = LogOutput("text", stream)
    output.write_line("lone surrogate \udcff")  # as os.fsdecode makes of a bad byte
    output.flush()
    assert stream.getvalue() == "lone surrogate \udcff\n"
