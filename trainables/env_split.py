"""What both trading envs set up identically from their config: the checked settings, the
market, the split's bar bounds and the action levels.

``trainables/env.py`` is the reference env and ``trainables/vector_env.py`` its vectorised
copy; both take this one setup so they accept and refuse exactly the same configs.
"""
from __future__ import annotations

from typing import Any

from trainables.actions import action_levels
from trainables.errors import DataError
from trainables.settings import env_settings, on_tensortrade


class SplitSetup:
    """Mixin of both envs: ``_set_up_split(config)`` sets ``settings``, ``market``,
    ``window_size``, ``commission``, ``initial_cash``, ``max_allowed_loss``, ``levels``,
    ``uses_tensortrade`` and the split's ``first_bar`` / ``end_bar`` (row positions into
    ``market.bars``, end exclusive)."""

    def _set_up_split(self, config: dict[str, Any]) -> None:
        from trainables.market import prepare_market

        settings = env_settings(config)
        self.settings = settings
        self.market = prepare_market(settings.get("data"))
        if settings["split"] not in self.market.splits:
            raise DataError(f"unknown split {settings['split']!r}; choose one of "
                            f"{sorted(self.market.splits)}")
        self.window_size = int(settings["window_size"])
        self.commission = float(settings["commission"])
        self.initial_cash = float(settings["initial_cash"])
        self.max_allowed_loss = settings["max_allowed_loss"]
        self.levels = action_levels(settings["actions"])
        self.uses_tensortrade = on_tensortrade(settings)
        start, end = self.market.splits[settings["split"]]
        # Bars before the split may fill the first window: they are past data, never future.
        self.first_bar = max(start, self.window_size - 1)
        self.end_bar = end
        if self.end_bar - self.first_bar < 2:
            raise DataError(f"split {settings['split']!r} has too few bars for window_size "
                            f"{self.window_size}")
