"""Calls raced against each other: each on a thread of its own, released together by a
barrier so that they reach the server at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from typing import TypeVar

import grpc

from tests.support.rpc_outcomes import Result
from tests.support.rpc_outcomes import error_reason
from tests.support.rpc_outcomes import outcome
from tests.support.rpc_outcomes import result_of
from tests.support.rpc_outcomes import result_or_error

T = TypeVar("T")


def run_together(
    calls: Sequence[Callable[[], T]],
    *,
    pool: ThreadPoolExecutor | None = None,
    timeout: float = 30.0,
) -> list[T]:
    """Runs every call on a thread of its own, all released at once; results in call
    order. A `pool` passed in (reused over many rounds) needs a thread for every call."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=timeout)
        return call()

    if pool is not None:
        return list(pool.map(run, calls))
    with ThreadPoolExecutor(max_workers=len(calls)) as own_pool:
        return list(own_pool.map(run, calls))


def responses_or_errors(calls: Sequence[Callable[[], T]]) -> list[T | grpc.RpcError]:
    """The calls run together: each one's response, or the gRPC error it raised."""
    return run_together([partial(result_or_error, call) for call in calls])


def split(results: Sequence[T | grpc.RpcError]) -> tuple[list[T], list[grpc.RpcError]]:
    """The responses and the errors of `responses_or_errors`."""
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    return [r for r in results if not isinstance(r, grpc.RpcError)], errors


def the_one_winner(results: Sequence[T | grpc.RpcError], code: grpc.StatusCode, reason: str) -> T:
    """The response of the only call that succeeded; every other one failed with
    `code` and the ErrorInfo `reason`."""
    winners, losers = split(results)
    assert len(winners) == 1, results
    assert len(losers) == len(results) - 1, results
    assert {(e.code(), error_reason(e)) for e in losers} == {(code, reason)}
    return winners[0]


def results_together(
    calls: Sequence[Callable[[], Any]], *, pool: ThreadPoolExecutor | None = None
) -> list[Result]:
    """The calls run together: each one's status code and reason, in call order."""
    return run_together([partial(result_of, call) for call in calls], pool=pool)


def outcomes_together(
    calls: Sequence[Callable[[], Any]],
    *,
    pool: ThreadPoolExecutor | None = None,
    timeout: float = 30.0,
) -> Counter[str]:
    """The calls run together: how many ended in which outcome ("OK", "CODE/REASON")."""
    return Counter(
        run_together([partial(outcome, call) for call in calls], pool=pool, timeout=timeout)
    )
