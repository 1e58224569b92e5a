"""The activator: requests wait for a free instance, in order, and fail clearly when none comes."""

import asyncio

import pytest

from knit.gateway.activator import REFUSED_BACKOFF, Endpoint, RevisionBackend, Unavailable


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_request_goes_to_the_least_busy_instance():
    async def scenario():
        backend = RevisionBackend("hello-00001", container_concurrency=0)
        busy, idle = Endpoint("a", "127.0.0.1", 1, in_flight=3), Endpoint("b", "127.0.0.1", 2)
        backend.add(busy)
        backend.add(idle)
        assert await backend.acquire(1) is idle
        assert idle.in_flight == 1 and backend.in_flight == 1

    run(scenario())


def test_idle_instances_take_turns():
    async def scenario():
        backend = RevisionBackend("hello-00001", 0)
        endpoints = [Endpoint(name, "127.0.0.1", port) for port, name in enumerate("abc")]
        for endpoint in endpoints:
            backend.add(endpoint)
        chosen = []
        for _ in range(6):
            endpoint = await backend.acquire(1)
            chosen.append(endpoint.name)
            backend.release(endpoint)
        assert sorted(chosen) == ["a", "a", "b", "b", "c", "c"]

    run(scenario())


def test_container_concurrency_is_a_hard_limit_and_waiters_are_served_in_order():
    async def scenario():
        backend = RevisionBackend("hello-00001", container_concurrency=1)
        only = Endpoint("a", "127.0.0.1", 1)
        backend.add(only)
        first = await backend.acquire(1)
        second = asyncio.create_task(backend.acquire(1))
        third = asyncio.create_task(backend.acquire(1))
        await asyncio.sleep(0.01)
        assert not second.done() and not third.done() and only.in_flight == 1
        assert backend.waiting == 2

        backend.release(first)
        assert await second is only and not third.done()
        backend.release(only)
        assert await third is only
        assert only.in_flight == 1

    run(scenario())


def test_a_request_for_a_revision_at_zero_asks_for_an_instance_and_gets_it_when_ready():
    async def scenario():
        demands = []
        backend = RevisionBackend("hello-00001", 0, on_demand=lambda: demands.append(1))
        waiting = asyncio.create_task(backend.acquire(5))
        await asyncio.sleep(0.01)
        assert demands == [1] and not waiting.done()
        instance = Endpoint("a", "127.0.0.1", 1)
        backend.add(instance)
        assert await waiting is instance

    run(scenario())


def test_no_instance_within_the_timeout_is_a_clear_unavailable():
    async def scenario():
        backend = RevisionBackend("hello-00001", 0)
        with pytest.raises(Unavailable, match=r"revision hello-00001 had no ready instance within 0.05s"):
            await backend.acquire(0.05)
        assert backend.in_flight == 0 and backend.waiting == 0

    run(scenario())


def test_busy_instances_for_the_whole_timeout_say_so():
    async def scenario():
        backend = RevisionBackend("hello-00001", 1)
        backend.add(Endpoint("a", "127.0.0.1", 1))
        await backend.acquire(1)
        with pytest.raises(Unavailable, match=r"every instance of revision hello-00001 was busy for 0.05s"):
            await backend.acquire(0.05)

    run(scenario())


def test_a_failing_revision_answers_at_once_with_the_reason():
    async def scenario():
        backend = RevisionBackend("hello-00001", 0)
        backend.failure = "instance hello-00001/1 failed: the process exited with code 3 before it was ready"
        with pytest.raises(
            Unavailable, match="is failing: instance hello-00001/1 failed: the process exited with code 3"
        ):
            await backend.acquire(30)

    run(scenario())


def test_the_meter_sees_every_request_start_and_finish():
    async def scenario():
        events = []
        backend = RevisionBackend(
            "hello-00001", 0, on_start=lambda: events.append("start"), on_finish=lambda: events.append("finish")
        )
        backend.add(Endpoint("a", "127.0.0.1", 1))
        endpoint = await backend.acquire(1)
        backend.release(endpoint)
        with pytest.raises(Unavailable):
            await RevisionBackend("x", 0, on_start=lambda: events.append("start"),
                                  on_finish=lambda: events.append("finish")).acquire(0.01)  # fmt: skip
        assert events == ["start", "finish", "start", "finish"]

    run(scenario())


def test_a_removed_instance_gets_no_new_requests():
    async def scenario():
        backend = RevisionBackend("hello-00001", 0)
        leaving, staying = Endpoint("a", "127.0.0.1", 1), Endpoint("b", "127.0.0.1", 2)
        backend.add(leaving)
        backend.add(staying)
        backend.remove(leaving)
        assert {(await backend.acquire(1)).name for _ in range(4)} == {"b"}

    run(scenario())


def test_an_instance_that_refused_a_connection_is_passed_over_for_a_moment():
    async def scenario():
        backend = RevisionBackend("hello-00001", 0)
        refusing, other = Endpoint("a", "127.0.0.1", 1), Endpoint("b", "127.0.0.1", 2)
        backend.add(refusing)
        backend.add(other)
        first = await backend.acquire(1)
        backend.refuse(first)
        assert backend.in_flight == 0 and first.in_flight == 0
        for _ in range(3):
            endpoint = await backend.acquire(1)
            assert endpoint is not first
            backend.release(endpoint)
        backend.remove(other)
        # Only the refusing one is left: not to be had at once, but once its moment is over.
        with pytest.raises(Unavailable):
            await backend.acquire(0)
        assert await backend.acquire(REFUSED_BACKOFF * 4) is first

    run(scenario())
