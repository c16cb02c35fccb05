"""First come, first served: how many chat turns run at once, who waits in what order, and who is
turned away.

On a few CPU cores the model is compute-bound: four turns at once take about four times as long
each, so when twenty chats arrive together and all run, every one of them finishes near the end
(bench/turn.py --concurrency 20: median wait 315 s, 20x a single turn). Admitted in order, two at a
time, the first chats are answered in seconds and the median waits 144 s, with 40% more answers per
minute. A served model on a GPU batches well, so there the limit is off.

The line is bounded (a busy server says so at once instead of queueing for ever) and one client may
hold only a few places, so one caller cannot fill it. A turn whose asker has gone (`Hangup`) leaves
the line at once, from whichever thread notices, not when its generator is garbage-collected.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class Busy(Exception):
    """No place in line for this turn now; `retry_after_s` is a hint for the client."""

    def __init__(self, message: str, retry_after_s: int = 10) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Hangup:
    """Set once the asker is gone (tab closed, connection dropped): the turn stops and frees its place.

    Hooks registered with `on_hangup` run once, on the thread that calls `hang_up` (a web server's
    event loop noticing a disconnect), so the place is freed even while the turn's own thread is
    blocked in the model.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def is_set(self) -> bool:
        return self._set

    def on_hangup(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if not self._set:
                self._hooks.append(hook)
                return
        hook()

    def hang_up(self) -> None:
        with self._lock:
            if self._set:
                return
            self._set = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()


class TurnQueue:
    """At most `limit` turns run at once (0: no limit); the rest wait in arrival order.

    A turn takes a ticket, waits until `admit` says it may run (reporting its place meanwhile), and
    always ends with `leave`, also when it is abandoned while waiting, so no place is ever lost.
    At most `max_waiting` turns wait (0: no bound) and one client holds at most `per_client` places,
    running or waiting (0: no cap; a turn without a client name is not capped).
    """

    def __init__(self, limit: int = 0, max_waiting: int = 0, per_client: int = 0) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.per_client = per_client
        self._cond = threading.Condition()
        self._waiting: deque[int] = deque()
        self._running: set[int] = set()
        self._client: dict[int, str] = {}
        self.joined = 0  # turns ever started here; also the next ticket

    def join(self, client: str = "") -> int:
        """A ticket, at the back of the queue; raises Busy when the line or the client's share is full."""
        with self._cond:
            if client and self.per_client:
                held = sum(1 for c in self._client.values() if c == client)
                if held >= self.per_client:
                    raise Busy(f"You already have {held} questions in progress; wait for an answer first.")
            if self.max_waiting and len(self._waiting) >= self.max_waiting:
                raise Busy("The assistant is busy answering other people. Please try again shortly.", 30)
            ticket = self.joined
            self.joined += 1
            self._waiting.append(ticket)
            self._client[ticket] = client
            self._admit_front()
            return ticket

    def admit(self, ticket: int, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the ticket's turn to run; True once it may.

        Returns False at once for a ticket that has left (its asker hung up)."""
        with self._cond:
            self._cond.wait_for(lambda: ticket in self._running or ticket not in self._waiting, timeout)
            return ticket in self._running

    def ahead(self, ticket: int) -> int:
        """How many chats are answered or waiting before this one (0 once it runs or has left)."""
        with self._cond:
            if ticket not in self._waiting:
                return 0
            return len(self._running) + self._waiting.index(ticket)

    def leave(self, ticket: int) -> None:
        """The turn is over (answered, failed or abandoned): its place goes to the next in line."""
        with self._cond:
            self._running.discard(ticket)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._client.pop(ticket, None)
            self._admit_front()

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _admit_front(self) -> None:
        while self._waiting and (not self.limit or len(self._running) < self.limit):
            self._running.add(self._waiting.popleft())
        self._cond.notify_all()
