"""Pacing: the one retry backoff and the one rate limiter every path uses.

Stdlib only: it ships in the Lambda zip with the rest of ``ddbsearch.core``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt``: exponential, capped, full jitter.

    ``min(cap, base * 2**attempt) * jitter()`` with ``jitter`` uniform in [0, 1)
    (AWS Architecture Blog, "Exponential Backoff and Jitter"). A constant
    ``jitter`` (``lambda: 1.0``) gives the plain capped exponential.
    """
    exponent = min(max(attempt, 0), 62)  # past 2**62 every delay is the cap anyway
    return min(cap, base * 2.0**exponent) * jitter()


class Pacer:
    """A token bucket that averages ``rate`` units per second, shared between threads.

    Callers :meth:`wait` before a request and :meth:`spend` what the request cost
    (known before for writes, only after for reads, from ConsumedCapacity); the bucket
    may go negative, and the next :meth:`wait` sleeps the debt off. ``rate=None``
    never waits.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        assert self.rate is not None
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until the bucket is no longer in debt (or ``stop`` is set)."""
        if self.rate is None:
            return
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 0:
                    return
                delay = -self._tokens / self.rate
            if stop is not None:
                if stop.wait(delay):
                    return
            else:
                self._sleep(delay)

    def acquire(self, units: float) -> None:
        """Block until ``units`` are available (at most one burst), then spend them."""
        if self.rate is None:
            return
        need = min(units, self.burst)
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= need:
                    self._tokens -= units
                    return
                delay = (need - self._tokens) / self.rate
            self._sleep(delay)

    def spend(self, units: float) -> None:
        if self.rate is None:
            return
        with self._lock:
            self._refill()
            self._tokens -= units
