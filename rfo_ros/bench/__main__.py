"""``python -m rfo_ros.bench {sim,train,learn,latency} ...``."""

from rfo_ros.bench import main

raise SystemExit(main())
