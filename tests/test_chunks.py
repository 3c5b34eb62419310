"""ChunkScheduler on worked numbers: three overlapping chunks, hand-computed commands per step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rfo_ros.runtime.chunks import ChunkScheduler


def three_chunks(blend: str, **kwargs) -> ChunkScheduler:
    """C=3, m=1: A=[1,2,3] from step 0, B=[10,20,30] from step 1, D=[100,200,300] from step 2."""
    sched = ChunkScheduler(3, 1, replan_every=1, blend=blend, **kwargs)
    for start, values in ((0, [1, 2, 3]), (1, [10, 20, 30]), (2, [100, 200, 300])):
        sched.add(np.array(values, dtype=float)[:, None], start)
    return sched


def commands(sched: ChunkScheduler, steps) -> list:
    out = []
    for step in steps:
        a = sched.action(step)
        out.append(None if a is None else float(a[0]))
    return out


def test_latest_takes_the_newest_covering_chunk():
    assert commands(three_chunks("latest"), range(6)) == [1, 10, 100, 200, 300, None]


def test_ensemble_weights_oldest_first():
    # k = ln 2: weights 1, 1/2, 1/4 for the oldest, middle and newest covering chunk.
    got = commands(three_chunks("ensemble", ensemble_decay=math.log(2)), range(6))
    expected = [
        1.0,  # A alone
        (2 * 1 + 10 * 0.5) / 1.5,  # 4.6667
        (3 * 1 + 20 * 0.5 + 100 * 0.25) / 1.75,  # 21.714
        (30 * 1 + 200 * 0.5) / 1.5,  # 86.667
        300.0,
        None,
    ]
    assert got[:5] == pytest.approx(expected[:5]) and got[5] is None
    assert commands(three_chunks("ensemble", ensemble_decay=0.0), [2]) == [pytest.approx(123 / 3)]


def test_overlap_cross_fades_linearly():
    # C=4, m=2, R=2: A = [1, -1] from step 0, B = [5, -5] from step 2; overlap = steps 2, 3 (L = 2).
    sched = ChunkScheduler(4, 2, replan_every=2, blend="overlap")
    sched.add(np.tile([1.0, -1.0], (4, 1)), 0)
    sched.add(np.tile([5.0, -5.0], (4, 1)), 2)
    expected = {0: 1, 1: 1, 2: 1 * 2 / 3 + 5 / 3, 3: 1 / 3 + 5 * 2 / 3, 4: 5, 5: 5}
    for step, value in expected.items():
        np.testing.assert_allclose(sched.action(step), [value, -value])
    assert sched.action(6) is None


def test_overlap_blends_only_the_two_newest():
    sched = three_chunks("overlap")  # at step 2: B (start 1) -> D (start 2), overlap steps 2..3, L = 2
    assert commands(sched, [2]) == [pytest.approx(20 * 2 / 3 + 100 / 3)]


def test_needs_plan_every_r_steps_or_when_uncovered():
    sched = ChunkScheduler(4, 1, replan_every=2)
    assert sched.needs_plan(0)
    sched.add(np.zeros((4, 1)), 0)
    assert [sched.needs_plan(s) for s in range(3)] == [False, False, True]
    sched.add(np.ones((4, 1)), 2)
    assert [sched.needs_plan(s) for s in (3, 4)] == [False, True]
    # A chunk for the future does not cover the present: plan now.
    early = ChunkScheduler(4, 1, replan_every=4)
    early.add(np.zeros((4, 1)), 3)
    assert early.needs_plan(1) and not early.needs_plan(3) and early.needs_plan(7)


def test_old_chunks_are_dropped_and_reset_forgets():
    sched = three_chunks("latest")
    sched.action(4)
    assert [start for start, _ in sched.covering(2)] == [2]  # A, B ended before step 4; D (2-4) kept
    sched.reset()
    assert sched.action(4) is None and sched.needs_plan(4)


def test_added_chunk_is_copied():
    sched = ChunkScheduler(2, 1)
    chunk = np.array([[1.0], [2.0]])
    sched.add(chunk, 0)
    chunk[:] = 99
    assert sched.action(1)[0] == 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"replan_every": 4}, "replan_every"),
        ({"replan_every": 0}, "replan_every"),
        ({"blend": "average"}, "unknown blend"),
        ({"ensemble_decay": float("nan")}, "ensemble_decay"),
        ({"committed_steps": 4}, "committed_steps"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChunkScheduler(3, 1, **kwargs)


def test_bad_chunks():
    sched = ChunkScheduler(3, 2)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        sched.add(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="non-finite"):
        sched.add(np.full((3, 2), np.nan), 0)


def test_realtime_conditioning_by_hand():
    """C=4, R=2, d=1: planning at step 2 keeps the running chunk's step-2 command (weight 1) and leans
    on its step-3 command (weight 1/2); the steps it does not cover get weight 0."""
    sched = ChunkScheduler(4, 1, replan_every=2, blend="realtime", committed_steps=1)
    first = sched.conditioning(0)
    assert (first["committed_weight"] == 0).all()  # nothing to keep before the first chunk
    sched.add(np.array([[1.0], [2.0], [3.0], [4.0]]), 0)
    cond = sched.conditioning(2)
    np.testing.assert_array_equal(cond["committed"][:, 0], [3.0, 4.0, 0.0, 0.0])
    np.testing.assert_array_equal(cond["committed_weight"], [1.0, 0.5, 0.0, 0.0])
    sched.add(np.array([[3.0], [7.0], [8.0], [9.0]]), 2)  # a plan that kept its committed step
    assert commands(sched, range(6)) == [1.0, 2.0, 3.0, 7.0, 8.0, 9.0]  # executed as "latest"
    wide = ChunkScheduler(8, 1, replan_every=2, blend="realtime", committed_steps=2)
    wide.add(np.arange(8.0)[:, None], 0)
    np.testing.assert_allclose(
        wide.conditioning(2)["committed_weight"], [1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0, 0]
    )
    assert ChunkScheduler(4, 1, blend="latest").conditioning(0) == {}


def test_chunk_bench_runs_every_blend_in_closed_loop(tmp_path):
    """``bench chunks`` on an inpainting C=4 model: every blend closes the loop and reports its jumps; a
    real-time plan starts exactly on the committed command (no switch), a fresh "latest" plan does not."""
    from rfo_ros.bench.chunks import closed_loop
    from rfo_ros.bench.latency import export_untrained_policy
    from rfo_ros.runtime import BLENDS

    model = export_untrained_policy(tmp_path / "c4.onnx", flow_steps=1, chunk=4, inpainting=True)
    rows = {}
    for blend in BLENDS:
        row = rows[blend] = closed_loop(str(model), blend, replan_every=2, seconds=0.2, seed=0)
        assert row["blend"] == blend and row["max_jump_at_replan"] > 0 and row["max_jump_between"] > 0
        assert row["mean_jump_at_replan"] <= row["max_jump_at_replan"] and row["forward_speed"] is not None
        assert row["mean_switch"] <= row["max_switch"]
    assert rows["realtime"]["max_switch"] < 1e-5 < rows["latest"]["max_switch"]
