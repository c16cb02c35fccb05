"""First come, first served: how many chat turns run at once, and who waits in what order.

On a few CPU cores the model is compute-bound: four turns at once take about four times as long
each, so when twenty chats arrive together and all run, every one of them finishes near the end
(bench/turn.py --concurrency 20: median wait 315 s, 20x a single turn). Admitted in order, two at a
time, the first chats are answered in seconds and the median waits 144 s, with 40% more answers per
minute. A served model on a GPU batches well, so there the limit is off.
"""

from __future__ import annotations

import threading
from collections import deque


class TurnQueue:
    """At most `limit` turns run at once (0: no limit); the rest wait in arrival order.

    A turn takes a ticket, waits until `admit` says it may run (reporting its place meanwhile), and
    always ends with `leave`, also when it is abandoned while waiting, so no place is ever lost.
    """

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._waiting: deque[int] = deque()
        self._running: set[int] = set()
        self.joined = 0  # turns ever started here; also the next ticket

    def join(self) -> int:
        """A ticket, at the back of the queue."""
        with self._cond:
            ticket = self.joined
            self.joined += 1
            self._waiting.append(ticket)
            self._admit_front()
            return ticket

    def admit(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the ticket's turn to run; True once it may."""
        with self._cond:
            return self._cond.wait_for(lambda: ticket in self._running, timeout)

    def ahead(self, ticket: int) -> int:
        """How many chats are answered or waiting before this one (0 once it runs)."""
        with self._cond:
            if ticket in self._running:
                return 0
            return len(self._running) + self._waiting.index(ticket)

    def leave(self, ticket: int) -> None:
        """The turn is over (answered, failed or abandoned): its place goes to the next in line."""
        with self._cond:
            self._running.discard(ticket)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._admit_front()

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def _admit_front(self) -> None:
        while self._waiting and (not self.limit or len(self._running) < self.limit):
            self._running.add(self._waiting.popleft())
        self._cond.notify_all()
