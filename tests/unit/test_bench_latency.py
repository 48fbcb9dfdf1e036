"""The benchmark's reading of the service's latency histogram, as Prometheus's
histogram_quantile reads one."""

from __future__ import annotations

import pytest

from benchmarks.h2load import Buckets
from benchmarks.h2load import latency_in

INF = float("inf")


def milliseconds(buckets: Buckets) -> tuple[float, float]:
    latency = latency_in(buckets)
    return round(latency.p50_ms, 4), round(latency.p99_ms, 4)


def test_a_quantile_is_interpolated_within_its_bucket() -> None:
    buckets = {0.001: 10.0, 0.0025: 50.0, 0.005: 90.0, 0.01: 99.0, 0.025: 100.0, INF: 100.0}

    assert milliseconds(buckets) == (2.5, 10.0)


def test_within_the_first_bucket_it_is_a_share_of_its_bound() -> None:
    assert milliseconds({0.00025: 200.0, 0.0005: 200.0, INF: 200.0}) == (0.125, 0.2475)


def test_in_the_open_bucket_it_is_the_highest_bound() -> None:
    assert milliseconds({0.005: 1.0, 0.01: 2.0, INF: 100.0}) == (10.0, 10.0)


@pytest.mark.parametrize(
    "buckets",
    [{}, {0.005: 0.0, INF: 0.0}, {0.005: 3.0}],
    ids=["no-buckets", "no-calls", "no-open-bucket"],
)
def test_an_empty_histogram_is_an_error_not_a_latency(buckets: Buckets) -> None:
    with pytest.raises(ValueError, match="no observations"):
        latency_in(buckets)
