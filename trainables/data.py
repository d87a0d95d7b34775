"""The market data API under its earlier name, for notebooks and scripts outside this repository.

The code lives in modules named by concern: :mod:`trainables.bar_files` (reading and validating
bar files), :mod:`trainables.synthetic` (embedded markets), :mod:`trainables.features`,
:mod:`trainables.splits` (train/val/test and walk-forward folds) and :mod:`trainables.market`
(``prepare_market`` and its cache). TradeTune's own code imports those directly.
"""
from trainables.bar_files import DATE_NAMES, MAX_DATA_BYTES, PRICE_COLUMNS, check_spacing, load_bars  # noqa: F401,E501
from trainables.errors import DataError  # noqa: F401
from trainables.features import FEATURE_WARMUP, compute_features  # noqa: F401
from trainables.market import DATA_KEYS, FILE_KEYS, MarketData, prepare_market  # noqa: F401
from trainables.splits import (DEFAULT_SPLITS, SPLIT_NAMES, WALK_FORWARD_KEYS,  # noqa: F401
                               WALK_FORWARD_MODES, split_positions, walk_forward_positions,
                               walk_forward_settings)
from trainables.synthetic import (BAR_COLUMNS, MAX_SYNTHETIC_BARS, SYNTHETIC_DEFAULTS,  # noqa: F401
                                  SYNTHETIC_KINDS, synthetic_bars)
