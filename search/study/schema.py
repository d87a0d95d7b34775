"""Every name TradeTune stores on Optuna studies and trials, in one place.

These names are a contract beyond this code: the SQL in ``search/study/trials.py`` and
``search/results/summaries.py`` filters on them, and optuna-dashboard shows them. Rename one and
studies written before the rename stop reading. Ray-, torch- and pandas-free.
"""
from __future__ import annotations

# -- study user attributes ----------------------------------------------------------------------
ATTR_CONFIG = "tradetune_config"        # the sweep config as launched (storage URL redacted)
ATTR_SPACE = "tradetune_space"          # the search space's algorithm, fingerprint and ranges
ATTR_DATA = "tradetune_data"            # the market data's fingerprint
ATTR_VERSIONS = "tradetune_versions"    # package versions at launch
ATTR_COMMAND = "tradetune_command"      # the command line that launched it (redacted)
ATTR_CREATED = "tradetune_created"      # when it was launched
ATTR_RESULTS = "tradetune_results"      # the study's experiment folder, removed by `delete`
ATTR_UID = "tradetune_uid"              # the study's id, written in its folder's marker
HEARTBEAT_PREFIX = "driver:"            # + driver id: a running driver's last heartbeat
TEST_LOOK_PREFIX = "test_look:"         # + time and nonce: one look at the test split
ATTR_MLFLOW_STUDY_RUN = "tradetune_mlflow_run"  # {uri, run_id}: the study's MLflow parent run

# -- trial user attributes ----------------------------------------------------------------------
ATTR_TUNE_ID = "tune_trial_id"
ATTR_DRIVER = "driver"
ATTR_CHECKPOINT = "checkpoint"
ATTR_METRICS = "metrics"
ATTR_STOP = "stop_reason"
ATTR_FAIL = "fail_reason"
ATTR_SEED = "seed"
ATTR_PROMOTION = "promotion"  # the latest `tradetune promote` result (search/sweep/promote.py)
ATTR_NODE = "node_id"
ATTR_ENV_STEPS = "env_steps"
# Each trial's key validation figures again, flat and numeric (``val_sharpe``, ...): the
# nested ``metrics`` stays TradeTune's; optuna-dashboard plots and filters only flat numbers.
FLAT_METRIC_PREFIX = "val_"
FLAT_METRICS = ("sharpe", "pnl_pct", "max_drawdown", "trades", "time_in_market",
                "buy_and_hold_pct", "active_sharpe_per_bar")
ATTR_FEASIBLE = "feasible"        # search.constraints met on validation (absent: none set)
ATTR_BROKEN = "constraints_broken"  # what each missed constraint says
ATTR_MLFLOW_RUN = "mlflow_run"    # {uri, run_id}: the trial's nested MLflow run (tracking.mlflow)
ATTR_RUNG_SCORES = "rung_scores"  # fold racing's score after each run (search/sweep/racing.py)
