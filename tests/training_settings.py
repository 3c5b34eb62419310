"""Training overrides that shrink any run to test size: 8 envs on one simulation thread, an 8-step
window, 32-unit networks (the tests' shared ``--set`` list; each adds what it needs)."""

TINY_TRAINING = [
    "env.num_envs=8",
    "env.threads=1",
    "diff.horizon=8",
    "policy.hidden=[32, 32]",
    "critic.hidden=[32, 32]",
]
