"""The pool core on a hand-made transport (no processes): tickets, renewal of a broken
worker, lost envs, and replies that are in after the deadline."""

import time

import pytest

from smoothvla.rollout.pool import EnvResult, Failure
from smoothvla.rollout.workers import WorkerPool


class Handle:
    def __init__(self, number):
        self.number = number
        self.killed = False


class FakeTransport:
    """Workers that answer every call at once with EnvResult(obs={"worker": number}); the
    test says which calls come back as a Failure or never."""

    noun, renewed, queues_calls = "worker", "restarted", True

    def __init__(self):
        self.spawned = 0
        self.broken: set[int] = set()   # workers whose next reply is a crash
        self.silent: set[int] = set()   # workers whose reply never comes
        self.late: set[int] = set()     # replies that are in only once the deadline passed

    def spawn(self, envs):
        self.spawned += 1
        return Handle(self.spawned)

    def ready(self, handle, timeout_s):
        return 1000 + handle.number

    def send(self, handle, w, op, payload):
        return (handle, op, dict(payload))

    def wait(self, calls, timeout_s):
        ready = [w for w in calls if w not in self.silent and (w not in self.late or timeout_s == 0)]
        if not ready:
            time.sleep(timeout_s)
        return ready

    def receive(self, handle, w, call):
        if w in self.broken:
            self.broken.discard(w)
            return Failure("crash", f"worker {w} died (exit code -9)")
        _, op, payload = call
        return {local: EnvResult(obs={"worker": handle.number, "op": op}, records=[])
                for local in payload}

    def kill(self, handle):
        handle.killed = True

    def close(self, handles):
        for h in handles:
            h.killed = True


def test_env_i_lives_on_worker_i_over_per_worker_and_replies_come_back_by_env():
    transport = FakeTransport()
    with WorkerPool(transport, 5, 2, timeout_s=1.0, start_timeout_s=1.0) as pool:
        replies = pool.reset({e: None for e in range(5)})
        # ceil(5 / 2) = 3 envs per worker: envs 0-2 on worker 0 (handle 1), 3-4 on worker 1
        assert [replies[e].obs["worker"] for e in range(5)] == [1, 1, 1, 2, 2]
        assert pool.worker_pids == [1001, 1002]
        first, second = pool.submit("run", {0: "a"}), pool.submit("run", {4: "b"})
        assert pool.result(second)[4].obs == {"worker": 2, "op": "run"}
        assert pool.result(first)[0].obs == {"worker": 1, "op": "run"}
        assert pool.restarts == 0 and not pool.failures


def test_a_broken_worker_is_renewed_once_and_its_envs_fail_until_reset():
    transport = FakeTransport()
    with WorkerPool(transport, 4, 2, timeout_s=1.0, start_timeout_s=1.0) as pool:
        pool.reset({e: None for e in range(4)})
        old = pool._workers[0]
        transport.broken.add(0)
        replies = pool.run({0: "a", 1: "b", 2: "c"})
        assert replies[0] == replies[1] == Failure("crash", "worker 0 died (exit code -9)")
        assert replies[2].obs["worker"] == 2
        assert pool.restarts == 1 and old.killed and pool.worker_pids == [1003, 1002]
        # envs 0 and 1 lost their episode with the worker: a run fails at once, a reset heals
        again = pool.run({1: "b", 2: "c"})
        assert again[1] == Failure("crash", "its worker was restarted during an earlier call")
        assert again[2].obs["worker"] == 2
        assert pool.reset({1: None})[1].obs["worker"] == 3
        assert pool.run({1: "b"})[1].obs == {"worker": 3, "op": "run"}
        assert pool.failures == {"crash": 3} and pool.restarts == 1


def test_a_silent_worker_times_out_but_a_reply_in_after_the_deadline_counts():
    transport = FakeTransport()
    with WorkerPool(transport, 2, 2, timeout_s=0.05, start_timeout_s=1.0) as pool:
        transport.silent.add(0)
        transport.late.add(1)
        ticket = pool.submit("reset", {0: None, 1: None})
        time.sleep(0.1)  # as when renewing another worker kept `result` from looking in time
        replies = pool.result(ticket)
        assert replies[0] == Failure("timeout", "worker 0 did not answer within 0.1 s")
        assert replies[1].obs["worker"] == 2  # in, though only looked at after the deadline
        assert pool.restarts == 1 and pool.failures == {"timeout": 1}


def test_bad_sizes_are_refused_before_any_worker_starts():
    transport = FakeTransport()
    with pytest.raises(ValueError, match="num_envs"):
        WorkerPool(transport, 0, 1, timeout_s=1.0, start_timeout_s=1.0)
    with pytest.raises(ValueError, match="positive"):
        WorkerPool(transport, 1, 1, timeout_s=0.0, start_timeout_s=1.0)
    assert transport.spawned == 0
