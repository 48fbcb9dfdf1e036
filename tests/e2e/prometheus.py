"""Scraping a server's Prometheus endpoint, parsed by prometheus-client's own parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import wait_until

SCRAPE_TIMEOUT = 5.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """GET /metrics: (sample name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT) as r:
        text = r.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape_when(port: int, condition: Callable[[Samples], bool], what: str) -> Samples:
    """Scrapes until `condition` holds (a call's metrics are recorded as it ends, which
    may be an instant after the client has its answer)."""
    samples: Samples = {}

    def holds() -> bool:
        nonlocal samples
        samples = scrape(port)
        return condition(samples)

    wait_until(holds, SCRAPE_TIMEOUT, what)
    return samples
