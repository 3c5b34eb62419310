"""``python -m rfo_ros.bench {sim,learn,latency} ...``."""

from rfo_ros.bench import main

raise SystemExit(main())
