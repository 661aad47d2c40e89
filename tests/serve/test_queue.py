"""The waiting line's rules on plain data: priority classes, fair shares, anti-starvation and wait estimates."""

from __future__ import annotations

import random

import pytest

from sluicegate.serve._queue import AdmissionRate, FairQueue, Priority, Ticket


def _ticket(client: str, priority: Priority = "bulk", share: float = 1.0) -> Ticket:
    return Ticket(client=client, share=share, priority=priority, enqueued_at=0.0)


def _drain(queue: FairQueue) -> list[Ticket]:
    out = []
    while (ticket := queue.pop()) is not None:
        out.append(ticket)
    return out


def test_interactive_goes_first_but_bulk_gets_every_tenth_turn() -> None:
    """While both wait, nine interactive turns are followed by one bulk turn; bulk is never starved."""
    queue = FairQueue(bulk_every=10)
    for _ in range(5):
        queue.push(_ticket("a", "bulk"))
    for _ in range(30):
        queue.push(_ticket("a", "interactive"))
    order = [t.priority for t in _drain(queue)]
    assert order[:10] == ["interactive"] * 9 + ["bulk"]
    assert order[10:20] == ["interactive"] * 9 + ["bulk"]
    assert order.count("bulk") == 5


def test_shares_split_turns_in_proportion() -> None:
    """Two busy clients with shares 3 and 1 get three turns to one, each in its own arrival order."""
    queue = FairQueue()
    web = [_ticket("web", share=3.0) for _ in range(30)]
    notebook = [_ticket("notebook", share=1.0) for _ in range(30)]
    for a, b in zip(web, notebook, strict=True):
        queue.push(a)
        queue.push(b)
    first_40 = _drain(queue)[:40]
    assert sum(t.client == "web" for t in first_40) == 30
    assert [t for t in first_40 if t.client == "web"] == web


def test_idle_client_banks_no_credit() -> None:
    """A client that arrives late starts at the current virtual time, not ahead of everybody for its idle spell."""
    queue = FairQueue()
    for _ in range(20):
        queue.push(_ticket("old"))
    for _ in range(10):
        assert queue.pop() is not None
    for _ in range(5):
        queue.push(_ticket("new"))
    order = [t.client for t in _drain(queue)[:10]]
    assert order.count("new") == 5
    assert order.count("old") == 5


def test_preempted_ticket_returns_to_the_head_of_its_line() -> None:
    """A ticket pushed back to the front keeps its place ahead of its client's later tickets."""
    queue = FairQueue()
    first, second = _ticket("a"), _ticket("a")
    queue.push(first)
    queue.push(second)
    taken = queue.pop()
    assert taken is first
    queue.push(first, front=True)
    assert _drain(queue) == [first, second]


@pytest.mark.parametrize("seed", range(20))
def test_ahead_of_matches_the_real_order(seed: int) -> None:
    """For random lines of one class, ahead_of() is exactly how many tickets pop before a new one."""
    rng = random.Random(seed)
    queue = FairQueue()
    clients = {name: rng.choice([0.5, 1.0, 2.0, 3.0]) for name in "abcd"}
    for _ in range(rng.randrange(0, 60)):
        name = rng.choice("abcd")
        queue.push(_ticket(name, share=clients[name]))
    for _ in range(rng.randrange(0, 10)):
        queue.pop()
    name = rng.choice("abcde")
    share = clients.get(name, 1.0)
    predicted = queue.ahead_of(name, share, "bulk")
    new = _ticket(name, share=share)
    queue.push(new)
    assert _drain(queue).index(new) == predicted


def test_admission_rate_and_waits() -> None:
    """Gaps in a busy period give the interval; the n-th admission from now is n intervals after the last one."""
    rate = AdmissionRate()
    assert rate.wait(0.0, 3, fallback=None) is None
    assert rate.wait(0.0, 3, fallback=0.5) == 1.0  # idle: the next one goes now, then every 0.5 s
    for i in range(10):
        rate.record(i * 0.25, backlog=True)
    assert rate.interval() == 0.25
    assert rate.wait(2.25, 4, fallback=None) == 1.0
    rate.idle()  # the waiters left: the gap until the next admission is an idle spell, not a busy-period gap
    rate.record(100.0, backlog=True)
    rate.record(100.25, backlog=True)
    assert rate.interval() == 0.25
