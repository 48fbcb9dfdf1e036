"""A call's budget (domain/budget.py) on a monotonic clock the tests move."""

from __future__ import annotations

import pytest

from orgservice.domain.budget import COMMIT_MARGIN_SECONDS
from orgservice.domain.budget import Budget
from orgservice.domain.budget import unlimited
from orgservice.domain.errors import CallDeadlineExceeded


class Ticks:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def test_remaining_counts_down_and_never_goes_negative(ticks: Ticks) -> None:
    budget = Budget(2.0, clock=ticks)
    assert budget.remaining() == 2.0
    ticks.now += 1.5
    assert budget.remaining() == 0.5
    assert not budget.spent
    ticks.now += 10
    assert budget.remaining() == 0.0
    assert budget.spent


def test_check_keeps_a_margin(ticks: Ticks) -> None:
    budget = Budget(1.0, clock=ticks)
    budget.check()
    budget.check(COMMIT_MARGIN_SECONDS)
    ticks.now += 1.0 - COMMIT_MARGIN_SECONDS / 2
    budget.check()  # time left, but less than the margin a commit needs
    with pytest.raises(CallDeadlineExceeded):
        budget.check(COMMIT_MARGIN_SECONDS)
    ticks.now += 1.0
    with pytest.raises(CallDeadlineExceeded) as caught:
        budget.check()
    assert caught.value.reason == "DEADLINE_EXCEEDED"


def test_a_cancelled_call_is_spent_whatever_time_is_left(ticks: Ticks) -> None:
    budget = Budget(60.0, clock=ticks)
    budget.cancel()
    assert budget.cancelled
    assert budget.spent
    with pytest.raises(CallDeadlineExceeded):
        budget.check()


def test_the_memory_only_twin_shares_deadline_and_cancellation(ticks: Ticks) -> None:
    budget = Budget(3.0, clock=ticks)
    twin = budget.no_io()
    assert budget.may_block
    assert not twin.may_block
    assert twin.deadline == budget.deadline
    ticks.now += 1.0
    assert twin.remaining() == budget.remaining() == 2.0
    twin.cancel()
    assert budget.cancelled


def test_work_no_client_waits_on_gets_an_hour() -> None:
    budget = unlimited()
    assert 3599 < budget.remaining() <= 3600
    assert budget.may_block
