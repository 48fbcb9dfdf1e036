"""Log set-up shared by the CLI and worker processes."""

import logging

# Chatty at INFO on import ("setup plugin …" once per plugin): that would bury one-line
# start-up errors such as a missing token key.
_QUIET_LOGGERS = ("alembic.runtime.plugins",)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
