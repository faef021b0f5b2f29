"""Task affinity: which pending episodes start on which free env slots.

An env slot keeps its env between episodes and builds a new one only when its next episode
is of another task (`pool._Slot.reset`); on real LIBERO that build costs about 10 s, against
a soft reset for the same task. `assign_episodes` sends each starting episode to a free slot
whose env already holds its task where one is free, and may also start, out of plan order, a
pending episode of a free slot's own task (`reorder`).

Neither changes an episode's trajectory: an env's reset replays the episode from its task,
init state, env seed and perturbation alone, whatever the env ran before (tested on the
tabletop suite and on LIBERO, whose soft reset replays a freshly built env bit for bit).
What the collector keeps fixed is everything else (see `Collector`): without `reorder` the
same episodes start in the same round and sit at the same place in the policy's batch as
without affinity; only the env that simulates them changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def assign_episodes(pending: Sequence[str], free: Sequence[int],
                    held: Mapping[int, str | None], *, reorder: bool = False,
                    affinity: bool = True) -> list[tuple[int, int]]:
    """Pair pending episodes with free slots.

    Args:
        pending: (P,) task id of each pending episode, in plan order.
        free: (F,) indices of the free slots, in the caller's order.
        held: task of the env each slot holds (a slot absent or None holds none).
        reorder: start, for each free slot holding a task, the first pending episode of that
            task not yet taken, then fill up in plan order. Only for episodes whose result
            does not depend on which episodes run beside them. False: the first min(P, F)
            pending episodes start, as without affinity.
        affinity: False: no preference at all, the first min(P, F) episodes take the free
            slots in order (the behaviour without this module; for comparison).

    Returns:
        min(P, F) pairs (pending index, slot), by pending index. Each starting episode takes
        the first free slot holding its task while one is left; the others take the
        remaining free slots, slots holding no env first, then in the caller's order.
    """
    n = min(len(pending), len(free))
    if not affinity:
        return list(zip(range(n), free))
    if reorder:
        want: dict[str, int] = {}
        for slot in free:
            if held.get(slot) is not None:
                want[held[slot]] = want.get(held[slot], 0) + 1
        chosen = []
        for i, task in enumerate(pending):
            if want.get(task, 0) > 0:
                want[task] -= 1
                chosen.append(i)
        taken = set(chosen)  # at most one per free slot, so at most n
        rest = [i for i in range(len(pending)) if i not in taken]
        chosen = sorted(chosen + rest[: n - len(chosen)])
    else:
        chosen = list(range(n))
    left = list(free)
    slot_of: dict[int, int] = {}
    for i in chosen:
        match = next((s for s in left if held.get(s) == pending[i]), None)
        if match is not None:
            slot_of[i] = match
            left.remove(match)
    left.sort(key=lambda s: held.get(s) is not None)  # stable: empty slots first
    for i in chosen:
        if i not in slot_of:
            slot_of[i] = left.pop(0)
    return [(i, slot_of[i]) for i in chosen]
