"""The success-vs-jerk figure keeps every policy (more than there are colours) and draws
each cell's intervals."""

from smoothvla.eval.summary import Cell
from smoothvla.report import figures


def cell(policy, success, jerk):
    return Cell(policy=policy, suite="s", perturbation="none", episodes=10, success=success,
                success_ci=(success - 0.1, success + 0.1), success_seed_std=0.0, grasp=1.0,
                cont_grasp=1.0, mean_jerk=jerk, mean_jerk_ci=(jerk - 1, jerk + 2), ldlj=-8.0,
                sparc=-2.0, steps=100.0, chunk_jump=0.1)


def test_every_policy_is_drawn_with_intervals(monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures, "_png", lambda fig: drawn.setdefault("fig", fig) and b"")
    names = [f"m{i}" + s for i in range(len(figures.COLORS) + 2) for s in ("", "+ensemble:1")]
    figures.success_vs_jerk([cell(n, 0.5, 10.0 + i) for i, n in enumerate(names)], expert_jerk=3.0)
    ax = drawn["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == names + ["experts' jerk"]
    # one error-bar pair per policy: the jerk bar of the first cell spans [9, 12]
    from matplotlib.collections import LineCollection

    bars = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    horizontal = {tuple(seg[:, 0]) for seg in bars if seg[0, 1] == seg[1, 1] == 50.0}
    vertical = {tuple(seg[:, 1]) for seg in bars if seg[0, 0] == seg[1, 0] == 10.0}
    assert (9.0, 12.0) in horizontal and (40.0, 60.0) in vertical
