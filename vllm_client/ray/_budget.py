"""The cluster-wide budget: one small async Ray actor holding the limits of a job (requests in
flight, requests per second) and the pause a ``Retry-After`` asked for; and the per-actor gate
that the batch engine awaits before each request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

HEARTBEAT_S = 0.5  # how often a gate tells the budget it is alive (and learns of a pause)
HOLDER_LOST_S = 10.0  # a holder silent this long (its actor died) gives back its slots


class Budget:
    """The state of the budget actor (a plain class: ``budget_actor()`` makes it a Ray actor).

    ``acquire(holder)`` waits for a slot in flight and the next request start the rate
    allows (and for any pause); ``release(holder)`` gives a slot back. Holders send a
    heartbeat; one silent for ``HOLDER_LOST_S`` (its actor was killed) loses its slots, so a
    lost actor does not shrink the budget for ever.
    """

    def __init__(self, max_in_flight: int | None, max_requests_per_second: float | None) -> None:
        self.max_in_flight = max_in_flight
        self.interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self.next_at = 0.0
        self.paused_until = 0.0
        self.held: dict[str, int] = {}
        self.seen: dict[str, float] = {}
        self.in_flight = 0
        self.peak = 0
        self.changed: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self.changed is None:
            self.changed = asyncio.Event()
        return self.changed

    def _reclaim(self, now: float) -> None:
        for holder, last in list(self.seen.items()):
            if now - last > HOLDER_LOST_S:
                self.in_flight -= self.held.pop(holder, 0)
                del self.seen[holder]

    async def acquire(self, holder: str) -> None:
        """Wait for a slot (and the rate's next start, and the end of any pause)."""
        changed = self._event()
        while True:
            now = time.monotonic()
            self.seen[holder] = now
            if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
                self._reclaim(now)
            if self.max_in_flight is None or self.in_flight < self.max_in_flight:
                break
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                pass
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.held[holder] = self.held.get(holder, 0) + 1
        now = time.monotonic()
        at = max(self.next_at, now, self.paused_until)
        if self.interval:
            self.next_at = at + self.interval
        if at > now:  # (the slot is held while waiting: in flight never exceeds the limit)
            await asyncio.sleep(at - now)

    def release(self, holder: str, n: int = 1) -> None:
        """Give ``n`` slots back."""
        held = self.held.get(holder, 0)
        n = min(n, held)
        if n:
            self.held[holder] = held - n
            self.in_flight -= n
            self._event().set()

    def heartbeat(self, holder: str) -> float:
        """The holder is alive; returns the seconds left of the current pause (0.0 for none)."""
        now = time.monotonic()
        self.seen[holder] = now
        return max(0.0, self.paused_until - now)

    def pause(self, seconds: float) -> None:
        """Start no request anywhere for ``seconds`` (a server's ``Retry-After``)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def stats(self) -> dict[str, Any]:
        """``in_flight`` now, ``peak`` in flight, and the pause left."""
        return {"in_flight": self.in_flight, "peak": self.peak,
                "paused_s": max(0.0, self.paused_until - time.monotonic())}


_ACTOR: Any = None


def budget_actor(max_in_flight: int | None, max_requests_per_second: float | None) -> Any:
    """A new budget actor (a Ray actor handle; it takes no CPU)."""
    global _ACTOR
    import ray

    if _ACTOR is None:
        _ACTOR = ray.remote(num_cpus=0, max_concurrency=10_000)(Budget)
    return _ACTOR.remote(max_in_flight, max_requests_per_second)


class Gate:
    """What the batch engine awaits before each request of one Ray actor: a window shared by
    the concurrent batches of the actor (``concurrency``), the cluster-wide budget when there
    is one, and the pause asked by a ``Retry-After`` (here, and anywhere in the cluster)."""

    def __init__(self, concurrency: int, budget: Any = None, *, limits: bool = False) -> None:
        import uuid

        self.window = asyncio.Semaphore(concurrency)
        self.budget = budget
        self.limits = limits and budget is not None  # acquire/release slots of the budget
        self.holder = uuid.uuid4().hex
        self.paused_until = 0.0
        self._beat: asyncio.Task[None] | None = None

    async def enter(self) -> None:
        """Wait for a slot."""
        await self.window.acquire()
        try:
            if self.budget is not None and self._beat is None:
                self._beat = asyncio.ensure_future(self._heartbeat())
            if self.limits:
                await self.budget.acquire.remote(self.holder)
            wait = self.paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            self.window.release()
            raise

    def leave(self) -> None:
        """A request finished."""
        self.window.release()
        if self.limits:
            self.budget.release.remote(self.holder)

    def pause(self, seconds: float) -> None:
        """A server asked to wait: no request of this actor starts for ``seconds``, nor
        (within a heartbeat) anywhere in the cluster."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)
        if self.budget is not None:
            self.budget.pause.remote(seconds)

    async def _heartbeat(self) -> None:
        while True:
            try:
                left = await self.budget.heartbeat.remote(self.holder)
                if left > 0:
                    self.paused_until = max(self.paused_until, time.monotonic() + left)
            except Exception:  # the budget actor is gone (the job ended): nothing to share
                return
            await asyncio.sleep(HEARTBEAT_S)

    def close(self) -> None:
        """Stop the heartbeat."""
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
