"""Log set-up shared by the CLI and worker processes: text or one JSON object per line.

The access log passes its fields (method, code, duration_ms, user_id, correlation_id,
trace_id) as `extra`, so JSON lines carry them as fields of their own.

A busy worker writes an access line per call. Through `logging`, with a write() per line,
that line cost ~50 of the ~370 µs of CPU a cached read took (the record, the formatter,
the handler chain, and the system call, which also hands the GIL to grpc's poller
thread). So the process's output (`LogOutput`) writes lines in batches, and
`log_fields` formats a line itself and hands it straight to that output when nothing
else would read the record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import select
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_JSON_FIELDS = ("asctime", "levelname", "name", "processName", "message")
_JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
# Chatty at INFO (a line per plugin and per migration step): that would bury one-line
# start-up errors such as a missing token key.
_QUIET_LOGGERS = ("alembic",)
# Longest a line below WARNING waits in the batch before it is written.
FLUSH_SECONDS = 0.1
# Workers share one stderr: a write of at most PIPE_BUF bytes to a pipe is never
# interleaved with another process's, so batches are cut at line ends below it.
_BATCH_BYTES = select.PIPE_BUF


class LogOutput(logging.StreamHandler):  # type: ignore[type-arg]
    """The process's log stream (stderr), written in batches: at once from WARNING up
    (with every line before it), else when a batch fills or FLUSH_SECONDS after its
    first line, and when logging shuts down. A process killed outright loses what the
    batch held (at most FLUSH_SECONDS of lines below WARNING)."""

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._encoding = getattr(self.stream, "encoding", None) or "utf-8"
        self._json = log_format == "json"
        if self._json:
            self.setFormatter(
                JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_NAMES, timestamp=False)
            )
        else:
            self.setFormatter(logging.Formatter(_TEXT_FORMAT))
        self._lines: list[str] = []
        self._bytes = 0
        self._pending = threading.Event()
        self._flusher: threading.Thread | None = None
        self._second: tuple[int, str] = (-1, "")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), urgent=record.levelno >= logging.WARNING)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def line(self, logger: str, level: int, message: str, fields: Mapping[str, Any]) -> str:
        """What the formatter makes of a record of `message` with `fields` as extras,
        without the record."""
        attributes = {
            "asctime": self._asctime(time.time()),
            "levelname": logging.getLevelName(level),
            "processName": multiprocessing.current_process().name,
            "name": logger,
            "message": message,
        }
        if self._json:
            document = {_JSON_NAMES.get(name, name): attributes[name] for name in _JSON_FIELDS}
            document.update(fields)
            return json.dumps(document)
        return _TEXT_FORMAT % attributes

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        line += self.terminator
        # What the stream writes at most (backslashreplace is the longest escape).
        size = len(line) if line.isascii() else len(line.encode(self._encoding, "backslashreplace"))
        with self.lock:  # type: ignore[union-attr]
            if self._bytes + size > _BATCH_BYTES:
                self._write()
            self._lines.append(line)
            self._bytes += size
            if urgent:
                self._write()
            elif len(self._lines) == 1:
                self._flush_later()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        batch = "".join(self._lines)
        self._lines.clear()
        self._bytes = 0
        try:
            self.stream.write(batch)
            self.stream.flush()
        except Exception:
            # Reported as logging reports a record it cannot write (stderr closed, say),
            # and dropped; the report itself may fail the same way.
            with contextlib.suppress(Exception):
                self.handleError(
                    logging.makeLogRecord(
                        {"msg": "log lines lost: %d bytes", "args": (len(batch),)}
                    )
                )

    def _flush_later(self) -> None:
        self._pending.set()
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_pending, name="log-flush", daemon=True
            )
            self._flusher.start()

    def _flush_pending(self) -> None:
        while True:
            self._pending.wait()
            time.sleep(FLUSH_SECONDS)
            self._pending.clear()  # before flushing: a line added after it sets it again
            self.flush()

    def _asctime(self, now: float) -> str:
        """`logging.Formatter.formatTime` for `now`, the second's text made once."""
        whole = int(now)
        second, text = self._second
        if second != whole:
            text = time.strftime(logging.Formatter.default_time_format, time.localtime(whole))
            self._second = (whole, text)
        return f"{text},{int((now - whole) * 1000):03d}"


def configure_logging(level: str, log_format: str = "text") -> None:
    root = logging.getLogger()
    root.handlers[:] = [LogOutput(log_format)]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def log_fields(logger: logging.Logger, level: int, message: str, fields: Mapping[str, Any]) -> None:
    """Logs `message` with `fields` as the record's extra attributes (the caller has
    checked the level): straight to the process's output when it alone would read the
    record, through `logging` otherwise (a test capturing records, say)."""
    output = _sole_output(logger, level)
    if output is None:
        logger.log(level, message, extra=fields)
    else:
        output.write_line(output.line(logger.name, level, message, fields))


def _sole_output(logger: logging.Logger, level: int) -> LogOutput | None:
    node = logger
    while node.parent is not None:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    match node.handlers:
        case [LogOutput() as output] if (
            level >= output.level and not node.filters and not output.filters
        ):
            return output
    return None
