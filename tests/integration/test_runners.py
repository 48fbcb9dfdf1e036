"""Where the server runs its use cases' statements (`storage.runners`): on PostgreSQL in
greenlets on its event loop, with no hand-off to a thread and back (why creates got
faster, docs/performance.md); on SQLite on its pool of threads."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event

from tests.conftest import Api

# The thread of a server started with `run_in_background`.
LOOP_THREAD = "orgservice-loop"


def test_statements_run_on_the_loop_on_postgresql_and_on_threads_on_sqlite(api: Api) -> None:
    engine = api.server.database.engine
    threads: list[str] = []

    def record(*_args: Any) -> None:
        threads.append(threading.current_thread().name)

    event.listen(engine, "before_cursor_execute", record)
    try:
        api.client().create_org()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert threads
    if engine.dialect.name == "postgresql":
        assert set(threads) == {LOOP_THREAD}
    else:
        assert all(name.startswith("rpc_") for name in threads), threads
