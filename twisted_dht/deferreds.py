"""Waiting on several Deferreds in a way that cancelling the wait cancels them, and fails.

C{DeferredList(..., consumeErrors=True)}, once cancelled, cancels its members and then
fires I{successfully} with their failures: a coroutine awaiting it carries on as if
nothing happened, so a caller's timeout is lost. L{settle} fails with L{CancelledError}.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

_T = TypeVar("_T")

Outcome = tuple[bool, Any]
"""(True, result) or (False, the Failure), as in a L{DeferredList}'s result."""


def settle(deferreds: Iterable[Deferred[_T]]) -> Deferred[list[Outcome]]:
    """Fire with every outcome of C{deferreds}, in order, once all have fired.

    Cancelling the returned Deferred cancels every member and fails it with
    L{CancelledError} at once.
    """
    members = DeferredList(list(deferreds), consumeErrors=True)
    cancelled = False

    def cancel(_: Deferred[list[Outcome]]) -> None:
        nonlocal cancelled
        cancelled = True
        members.cancel()

    settled: Deferred[list[Outcome]] = Deferred(cancel)

    def done(outcomes: list[Outcome]) -> None:
        if not cancelled:
            settled.callback(outcomes)

    members.addCallback(done)
    return settled


def results(outcomes: list[Outcome]) -> list[Any]:
    """The results of the members of a L{settle} that succeeded."""
    return [value for ok, value in outcomes if ok]


def firstFailure(outcomes: list[Outcome]) -> Failure | None:
    """The failure of the first member of a L{settle} that failed, if any."""
    return next((value for ok, value in outcomes if not ok), None)
