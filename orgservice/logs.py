"""Log set-up shared by the CLI and worker processes."""

import logging

# Chatty at INFO (a line per plugin and per migration step): that would bury one-line
# start-up errors such as a missing token key.
_QUIET_LOGGERS = ("alembic",)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
