"""Training overrides that shrink any run to test size: 8 envs on one simulation thread, an 8-step
window, 32-unit networks (the tests' shared ``--set`` list; each adds what it needs), and a helper that
interrupts a run at an iteration (the resume tests)."""

TINY_TRAINING = [
    "env.num_envs=8",
    "env.threads=1",
    "diff.horizon=8",
    "policy.hidden=[32, 32]",
    "critic.hidden=[32, 32]",
]


def interrupt_at(runner, iteration: int) -> None:
    """Train ``runner`` until ``iteration``, then interrupt it as Ctrl-C would (it saves a checkpoint)."""

    def stop(row):
        if row["iteration"] == iteration:
            raise KeyboardInterrupt

    runner.callback = stop
    try:
        runner.train()
    except KeyboardInterrupt:
        return
    raise AssertionError(f"the run ended before iteration {iteration}")
