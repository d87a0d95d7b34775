"""A trial's PPO, made cheaper per step through RLlib's own extension points (issue 25).

Same algorithm, same hyperparameters, same losses: only per-call Python overhead is cut, where
``scripts/bench_peer.py``'s profile (BENCHMARKS.md, "Training speed against SB3") found it.

- ``TrialPPOModule``, RLlib's default PPO torch module with two changes: its forward passes do
  not switch ``train()``/``eval()`` modes on every call (RLlib's walk every submodule per
  step; the MLP has no dropout or batch norm, so the mode changes nothing), and exploration
  samples the action and its log-probability in the forward pass, from the same categorical
  distribution RLlib's ``GetActions`` connector would build (which then has nothing to do).
- ``LastObservations`` and ``ActionsToNumpy``: the env runner's connector pipelines, one piece
  each instead of RLlib's six and seven generic ones (time ranks, states, multi-agent
  mapping, unbatching into per-env lists), for what a flat-observation, stateless,
  single-agent module needs: the last observation of every sub-env as one tensor, and the
  module's outputs as numpy arrays indexed by sub-env.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.algorithms.ppo.ppo import (LEARNER_RESULTS_KL_KEY,
                                          LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
                                          LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance


class TrialPPOModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module without per-call mode switches, sampling while exploring."""

    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_exploration(batch, **kwargs)

    def forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_train(batch, **kwargs)

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            out = self._forward(batch, **kwargs)
            logits = out[Columns.ACTION_DIST_INPUTS]
            if isinstance(self.action_space, gym.spaces.Discrete):
                # What TorchCategorical's sample() and logp() compute, without building
                # torch.distributions objects (and validating their arguments) every step.
                logp = torch.log_softmax(logits, dim=-1)
                actions = torch.multinomial(logp.exp(), 1, True).squeeze(-1)
                out[Columns.ACTION_LOGP] = logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            else:
                dist = self.get_exploration_action_dist_cls().from_logits(logits)
                actions = dist.sample()
                out[Columns.ACTION_LOGP] = dist.logp(actions)
            out[Columns.ACTIONS] = actions
        return out


class TrialPPOLearner(PPOTorchLearner):
    """RLlib's PPO torch learner with a cheaper optimizer step, same update.

    - Adam runs as one fused kernel over all parameters (``fused=True``, torch's CPU
      implementation of the same update) instead of a Python loop over them.
    - Gradients are checked for NaN/inf once, as one tensor, instead of twice per parameter;
      only when one is not finite does RLlib's own handling run (it zeroes them).
    - The per-minibatch "off-policyness" metric (weight updates between sampling and
      learning, always 0 for PPO with one local env runner) is not computed.
    """

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id,
                                optimizer=torch.optim.Adam(params, fused=True),
                                params=params, lr_or_lr_schedule=config.lr)

    def apply_gradients(self, gradients_dict) -> None:
        grads = [grad for grad in gradients_dict.values() if grad is not None]
        plain = self._grad_scalers is None and self._lr_scheduler_classes is None
        if not (plain and grads and bool(torch.isfinite(
                torch.cat([grad.reshape(-1) for grad in grads])).all())):
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()

    def _compute_off_policyness(self, batch) -> None:
        return None

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        """RLlib's PPO loss (``PPOTorchLearner.compute_loss_for_module``, ray 2.60), term for
        term, computed cheaper: masked means as a weighted sum (no boolean indexing, which
        copies and syncs), and the logged statistics without autograd."""
        module = self.module[module_id].unwrapped()
        if Columns.LOSS_MASK in batch:
            weights = batch[Columns.LOSS_MASK].to(torch.float32)
            weights = weights / weights.sum()

            def mean(data):
                return torch.dot(data, weights)
        else:
            mean = torch.mean
        curr = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        prev = module.get_exploration_action_dist_cls().from_logits(
            batch[Columns.ACTION_DIST_INPUTS])
        logp_ratio = torch.exp(curr.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
        mean_kl_loss = (mean(prev.kl(curr)) if config.use_kl_loss
                        else torch.tensor(0.0, device=logp_ratio.device))
        curr_entropy = curr.entropy()
        advantages = batch[Postprocessing.ADVANTAGES]
        surrogate_loss = torch.min(
            advantages * logp_ratio,
            advantages * torch.clamp(logp_ratio, 1 - config.clip_param, 1 + config.clip_param))
        if config.use_critic:
            value_fn_out = module.compute_values(batch,
                                                 embeddings=fwd_out.get(Columns.EMBEDDINGS))
            vf_loss = torch.pow(value_fn_out - batch[Postprocessing.VALUE_TARGETS], 2.0)
            vf_loss_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
        else:
            value_fn_out = vf_loss = vf_loss_clipped = torch.tensor(0.0,
                                                                    device=logp_ratio.device)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total_loss = mean(-surrogate_loss + config.vf_loss_coeff * vf_loss_clipped
                          - entropy_coeff * curr_entropy)
        if config.use_kl_loss:
            total_loss += self.curr_kl_coeffs_per_module[module_id] * mean_kl_loss
        with torch.no_grad():
            critic = config.use_critic
            self.metrics.log_dict({
                POLICY_LOSS_KEY: -mean(surrogate_loss),
                VF_LOSS_KEY: mean(vf_loss_clipped) if critic else vf_loss_clipped,
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: mean(vf_loss) if critic else vf_loss,
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                    batch[Postprocessing.VALUE_TARGETS], value_fn_out),
                ENTROPY_KEY: mean(curr_entropy),
                LEARNER_RESULTS_KL_KEY: mean_kl_loss.detach(),
            }, key=module_id, window=1)
        return total_loss


class LastObservations(ConnectorV2):
    """Env-to-module: ``{"obs": tensor[n_envs, obs]}``, each sub-env's latest observation."""

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None,
                 **kwargs: Any) -> dict[str, Any]:
        obs = np.stack([episode.get_observations(-1) for episode in episodes])
        batch[Columns.OBS] = torch.from_numpy(obs)
        return batch


class ActionsToNumpy(ConnectorV2):
    """Module-to-env: every module output as a numpy array whose row ``i`` is sub-env ``i``'s
    (what the env runner indexes); actions sampled here only if the module did not."""

    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None,
                 **kwargs: Any) -> dict[str, Any]:
        if Columns.ACTIONS not in batch:
            dist_cls = (rl_module.get_exploration_action_dist_cls() if explore
                        else rl_module.get_inference_action_dist_cls())
            dist = dist_cls.from_logits(batch[Columns.ACTION_DIST_INPUTS])
            if not explore:
                dist = dist.to_deterministic()
            actions = dist.sample()
            batch[Columns.ACTIONS] = actions
            batch[Columns.ACTION_LOGP] = dist.logp(actions)
        return {key: value.numpy() if isinstance(value, torch.Tensor) else value
                for key, value in batch.items()}


def speed_up(config):
    """``config`` (a PPOConfig of a trial) with the module and connectors above."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    return (
        config
        .learners(learner_class=TrialPPOLearner)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=TrialPPOModule))
        .env_runners(env_to_module_connector=lambda env, spaces=None, device=None:
                     [LastObservations()],
                     add_default_connectors_to_env_to_module_pipeline=False,
                     module_to_env_connector=lambda env, spaces=None: [ActionsToNumpy()],
                     add_default_connectors_to_module_to_env_pipeline=False)
    )
