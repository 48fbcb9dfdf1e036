"""Alembic environment: runs on the connection orgservice.storage.migrate hands over."""

from typing import Any
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from orgservice.storage.tables import UTCDateTime
from orgservice.storage.tables import metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Keeps generated migrations free of application types."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
