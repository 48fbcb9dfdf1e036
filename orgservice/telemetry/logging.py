"""Log set-up shared by the CLI and worker processes: text or one JSON object per line.

The access log passes its fields (method, code, duration_ms, user_id, correlation_id,
trace_id) as `extra`, so JSON lines carry them as fields of their own.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_JSON_FIELDS = ("asctime", "levelname", "name", "processName", "message")
# Chatty at INFO (a line per plugin and per migration step): that would bury one-line
# start-up errors such as a missing token key.
_QUIET_LOGGERS = ("alembic",)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
