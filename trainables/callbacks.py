"""RLlib callback recording the tutorial's per-episode trading metrics on the new API stack."""
from __future__ import annotations

from ray.rllib.callbacks.callbacks import RLlibCallback

from trainables import metrics as M


class TradingMetrics(RLlibCallback):
    """Logs P&L, P&L % and final net worth of each finished training episode.

    Values land in the training result under ``env_runners`` (and so in Tune's results and
    TensorBoard). They are read from the episode's last info dict, which the env fills, so no
    callback ever touches the env object itself.
    """

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:  # noqa: D102
        info = episode.get_infos(-1)
        if not info or metrics_logger is None:
            return
        worth, cash = float(info["net_worth"]), float(info["initial_cash"])
        metrics_logger.log_value(M.TRAIN_NET_WORTH, worth, reduce="mean")
        metrics_logger.log_value(M.TRAIN_PNL, worth - cash, reduce="mean")
        metrics_logger.log_value(M.TRAIN_PNL_PCT, (worth / cash - 1.0) * 100.0, reduce="mean")
