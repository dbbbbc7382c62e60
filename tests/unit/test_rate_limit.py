"""The supabase target's shared request cap (targets/rate_limit.py) on a fake clock and a fake store:
containers that share the store never put two requests closer than the cap's interval, whatever the
order they ask in; a slot left unused is dropped, never spent on top of another container's block."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from auth_migration.targets.rate_limit import MAX_BLOCK, SharedRateLimiter, block_size


@dataclass
class FakeTime:
    now: float = 1000.0
    #: Added to the clock by every store round trip (half before the store answers, half after).
    round_trip_s: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@dataclass
class FakeStore:
    """target_rate_slots in memory: one next_at per key, on the same clock as the containers."""

    time: FakeTime
    next_at: float = 0.0
    calls: list[tuple[int, float]] = field(default_factory=list)

    def reserve(self, n: int, span_s: float) -> float:
        self.time.now += self.time.round_trip_s / 2
        self.calls.append((n, span_s))
        start = max(self.next_at, self.time.now)
        self.next_at = start + span_s
        delay = start - self.time.now
        self.time.now += self.time.round_trip_s / 2
        return delay


def limiter(rate: float, store: FakeStore, clock: FakeTime) -> SharedRateLimiter:
    return SharedRateLimiter(rate, store.reserve, sleep=clock.sleep, monotonic=clock.monotonic)


def send_times(limiters: list[SharedRateLimiter], clock: FakeTime, requests: int) -> list[float]:
    """Every container sends as fast as its limiter lets it, side by side: each has its own timeline, and
    the one furthest behind always moves next (so the store sees the calls in time order)."""
    local = [clock.now] * len(limiters)
    times = []
    for _ in range(requests):
        pick = min(range(len(limiters)), key=lambda i: local[i])
        clock.now = local[pick]
        limiters[pick].acquire()
        local[pick] = clock.now
        times.append(clock.now)
    return sorted(times)


@pytest.mark.parametrize("containers", [1, 2, 5])
@pytest.mark.parametrize("rate", [7.0, 50.0, 500.0])
def test_containers_sharing_the_store_stay_within_the_cap(containers: int, rate: float) -> None:
    clock = FakeTime(round_trip_s=0.0005)
    store = FakeStore(clock)
    limiters = [limiter(rate, store, clock) for _ in range(containers)]

    times = send_times(limiters, clock, int(rate * 6))

    # Any one-second window holds at most rate + 1 requests.
    worst = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert worst <= rate + 1
    # And the cap is used: together they send at the cap, not a fraction of it.
    assert len(times) / (times[-1] - times[0]) >= rate * 0.9


def test_one_container_reserves_blocks_not_a_statement_per_request() -> None:
    clock = FakeTime()
    store = FakeStore(clock)
    one = limiter(500, store, clock)
    send_times([one], clock, 1000)
    assert len(store.calls) == 1000 / block_size(500)
    assert {n for n, _ in store.calls} == {50}
    assert all(span == pytest.approx(50 / 500) for _, span in store.calls)


def test_a_slot_left_unused_is_dropped_not_spent_late() -> None:
    clock = FakeTime()
    store = FakeStore(clock)
    a, b = limiter(10, store, clock), limiter(10, store, clock)
    a.acquire()  # a holds the block [1000.0, 1000.1): one slot at 10 req/s
    clock.now += 5.0  # a idles far past its block
    b.acquire()
    first_b = clock.now
    a.acquire()  # a's next slot would be long gone: it reserves anew instead of sending at once
    assert clock.now >= first_b + 0.1 - 1e-9
    assert a.blocks == 2


def test_block_size_spans_a_tenth_of_a_second_at_least_one_slot() -> None:
    assert block_size(1) == 1
    assert block_size(50) == 5
    assert block_size(200) == 20
    assert block_size(5000) == MAX_BLOCK


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        SharedRateLimiter(0, lambda n, s: 0.0)
