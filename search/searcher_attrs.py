"""Names of the attributes TradeTune stores on Optuna trials and studies (ray-free)."""
from __future__ import annotations

ATTR_TUNE_ID = "tune_trial_id"
ATTR_DRIVER = "driver"
ATTR_CHECKPOINT = "checkpoint"
ATTR_METRICS = "metrics"
ATTR_STOP = "stop_reason"
ATTR_FAIL = "fail_reason"
ATTR_SEED = "seed"
ATTR_PROMOTION = "promotion"  # the latest `tradetune promote` result (search/promote.py)
HEARTBEAT_PREFIX = "driver:"
ATTR_NODE = "node_id"
ATTR_ENV_STEPS = "env_steps"
