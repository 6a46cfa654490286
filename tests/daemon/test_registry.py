"""The chaincode table's rules, without an engine."""

from __future__ import annotations

from ccdaemon.supervise.registry import Registry, State


def test_a_relaunch_wakes_waiters_of_the_old_record_and_not_its_own() -> None:
    """Waiters on the replaced record wake; the new record starts unset (no busy loop)."""
    registry = Registry()
    old = registry.launching("cc:1", "dev-cc-1", "img")
    registry.running(old, "id1")
    old_event = old.changed
    new = registry.launching("cc:1", "dev-cc-1", "img")
    assert old_event.is_set()
    assert not new.changed.is_set()
    assert registry.get("cc:1") is new
    assert not registry.is_current(old)


def test_stale_exit_reports_change_nothing() -> None:
    """A die event for another container id, or for a record not running, is ignored."""
    registry = Registry()
    cc = registry.launching("cc:1", "dev-cc-1", "img")
    assert registry.exited("dev-cc-1", 1) is None  # still launching
    registry.running(cc, "id2")
    assert registry.exited("dev-cc-1", 1, container_id="id1") is None
    assert cc.state is State.RUNNING
    assert registry.exited("/dev-cc-1", 3, container_id="id2") is cc
    assert (cc.state, cc.exit_code) == (State.EXITED, 3)


def test_counts_name_every_state() -> None:
    """Metrics see every state, zeros included."""
    registry = Registry()
    registry.running(registry.launching("a:1", "a", "i"), "x")
    registry.launching("b:1", "b", "i")
    assert registry.counts() == {
        "launching": 1,
        "running": 1,
        "exited": 0,
        "stopping": 0,
        "stopped": 0,
        "failed": 0,
    }
