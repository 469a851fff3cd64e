"""Several server replicas behind one client: least outstanding requests, failover, health probes.

Pure bookkeeping (no I/O): the core's send flow asks ``pick()`` for a replica,
reports connection failures with ``mark_down()``, and probes the replicas that
``due_for_probe()`` names with ``GET /health`` before using them again.
"""

from __future__ import annotations

import threading
import time

from ._urls import server_root

COOLDOWN = 2.0  # seconds before a replica that failed is probed again (doubles per failure)
MAX_COOLDOWN = 60.0


class Replica:
    """One server: its base URL, requests in flight, and whether it is taken out."""

    __slots__ = ("base_url", "root", "outstanding", "down_until", "failures", "served")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.root = server_root(base_url)
        self.outstanding = 0
        self.down_until: float | None = None  # None: in service
        self.failures = 0
        self.served = 0

    def __repr__(self) -> str:
        state = "up" if self.down_until is None else "down"
        return f"Replica({self.base_url!r}, {state}, outstanding={self.outstanding})"


class ReplicaSet:
    """The replicas of one client; thread-safe."""

    def __init__(self, base_urls: list[str]) -> None:
        self.replicas = [Replica(u) for u in base_urls]
        self._lock = threading.Lock()
        self._next = 0

    def pick(self, avoid: Replica | None = None) -> Replica:
        """The in-service replica with the fewest requests in flight (rotating among ties),
        preferring one other than ``avoid``; when all are out, the one that comes back soonest."""
        with self._lock:
            n = len(self.replicas)
            start = self._next
            self._next = (start + 1) % n
            best: Replica | None = None
            for k in range(n):
                r = self.replicas[(start + k) % n]
                if r.down_until is not None or (r is avoid and n > 1):
                    continue
                if best is None or r.outstanding < best.outstanding:
                    best = r
            if best is None:
                up = [r for r in self.replicas if r.down_until is None]
                best = up[0] if up else min(self.replicas, key=lambda r: r.down_until or 0.0)
            best.outstanding += 1
            best.served += 1
            return best

    def release(self, replica: Replica) -> None:
        """A request to ``replica`` finished (answered, failed or stream closed)."""
        with self._lock:
            replica.outstanding -= 1

    def mark_down(self, replica: Replica, now: float | None = None) -> None:
        """Take a replica out after a connection failure; probe it again after a cooldown."""
        with self._lock:
            replica.failures += 1
            wait = min(COOLDOWN * (2 ** (replica.failures - 1)), MAX_COOLDOWN)
            replica.down_until = (time.monotonic() if now is None else now) + wait

    def mark_up(self, replica: Replica) -> None:
        """Back in service (its /health answered 200)."""
        with self._lock:
            replica.down_until = None
            replica.failures = 0

    def due_for_probe(self, now: float | None = None) -> list[Replica]:
        """Replicas out of service whose cooldown has passed; claims them so one probe runs at a time."""
        t = time.monotonic() if now is None else now
        with self._lock:
            due = [r for r in self.replicas if r.down_until is not None and r.down_until <= t]
            for r in due:
                r.down_until = t + COOLDOWN  # until the probe answers
            return due
