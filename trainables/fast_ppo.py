"""A trial's PPO, made cheaper per step through RLlib's own extension points (issue 25).

Same algorithm, same hyperparameters, same losses: only per-call Python overhead is cut, where
``scripts/bench_peer.py``'s profile (BENCHMARKS.md, "Training speed against SB3") found it.

- ``TrialPPOModule``, RLlib's default PPO torch module with three changes: its forward passes do
  not switch ``train()``/``eval()`` modes on every call (RLlib's walk every submodule per
  step; the MLP has no dropout or batch norm, so the mode changes nothing), and exploration
  samples the action and its log-probability in the forward pass, from the same categorical
  distribution RLlib's ``GetActions`` connector would build (which then has nothing to do);
  and its plain MLP trunks and policy head are called as torch layers, not through RLlib's
  model wrappers.
- ``LastObservations`` and ``ActionsToNumpy``: the env runner's connector pipelines, one piece
  each instead of RLlib's six and seven generic ones (time ranks, states, multi-agent
  mapping, unbatching into per-env lists), for what a flat-observation, stateless,
  single-agent module needs: the last observation of every sub-env as one tensor, and the
  module's outputs as numpy arrays indexed by sub-env.
- ``TrialEnvRunner``: RLlib's env runner calling those two pieces directly in its per-step
  loop, without the per-step wrappers, timers and no-op callbacks.
- ``TrialPPOLearner``: fused Adam, minibatches cut from whole tensors, per-minibatch
  bookkeeping done once per update, a categorical policy's loss terms from ``log_softmax``.

``tests/trainables/test_fast_ppo.py`` checks that a trial samples the same episodes and
computes the same losses and counters as RLlib's stock PPO.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import (
    DefaultPPOTorchRLModule,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.models.torch.encoder import TorchActorCriticEncoder, TorchMLPEncoder
from ray.rllib.core.models.torch.heads import TorchMLPHead
from ray.rllib.env.env_runner import ENV_STEP_FAILURE
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.minibatch_utils import (
    MiniBatchCyclicIterator,
    MiniBatchDummyIterator,
)
from ray.rllib.utils.torch_utils import explained_variance


class TrialPPOModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module without per-call mode switches, sampling while exploring,
    and, where its trunks and policy head are RLlib's plain MLPs (a trial's model config),
    calling their torch layers directly instead of through RLlib's model wrappers."""

    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_exploration(batch, **kwargs)

    def forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_train(batch, **kwargs)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        layers = self._plain_layers()
        if layers is None:
            return super()._forward(batch, **kwargs)
        actor, _, pi = layers
        return {Columns.ACTION_DIST_INPUTS: pi(actor(batch[Columns.OBS]))}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        layers = self._plain_layers()
        if layers is None or layers[1] is None:
            return super()._forward_train(batch, **kwargs)
        actor, critic, pi = layers
        obs = batch[Columns.OBS]
        return {Columns.EMBEDDINGS: critic(obs), Columns.ACTION_DIST_INPUTS: pi(actor(obs))}

    def _plain_layers(self):
        """(actor trunk, critic trunk or None, policy head) as ``nn.Sequential``s, exactly
        what ``DefaultPPOTorchRLModule._forward``/``_forward_train`` run for RLlib's MLP
        encoder (separate trunks) and MLP head without log-std clipping; None otherwise."""
        layers = self.__dict__.get("_plain")
        if layers is None:
            layers = self.__dict__["_plain"] = _plain_mlp_layers(self) or False
        return layers or None

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


def _plain_mlp_layers(module) -> tuple | None:
    encoder, pi = getattr(module, "encoder", None), getattr(module, "pi", None)
    if (type(encoder) is not TorchActorCriticEncoder or encoder.config.shared
            or type(encoder.actor_encoder) is not TorchMLPEncoder
            or type(pi) is not TorchMLPHead or pi.clip_log_std):
        return None
    critic = getattr(encoder, "critic_encoder", None)
    if critic is not None and type(critic) is not TorchMLPEncoder:
        return None
    return (encoder.actor_encoder.net.mlp, critic.net.mlp if critic is not None else None,
            pi.net.mlp)


class TrialPPOLearner(PPOTorchLearner):
    """RLlib's PPO torch learner with a cheaper optimizer step, same update.

    - Adam runs as one fused kernel over all parameters (``fused=True``, torch's CPU
      implementation of the same update) instead of a Python loop over them.
    - Gradients are checked for NaN/inf once, as one sum, instead of twice per parameter;
      only when one is not finite does RLlib's own handling run (it zeroes them).
    - The per-minibatch "off-policyness" metric (weight updates between sampling and
      learning, always 0 for PPO with one local env runner) is not computed.
    - Minibatches are cut from whole tensors (``ShuffledMinibatches``: the same rows in the
      same order as RLlib's ``MiniBatchCyclicIterator``, without ``SampleBatch`` slicing and
      concatenation); where the batch is not one flat module batch of tensors, RLlib's
      iterator runs.
    - Per-minibatch bookkeeping is done once per update: the step counters are summed and
      logged once, and the loss statistics (RLlib keeps only the last minibatch's, window 1)
      are computed once, from the last minibatch, before PPO reads its KL from them.
    - A categorical policy's log-probabilities, entropy and KL are computed from
      ``log_softmax`` directly instead of through ``torch.distributions`` objects.
    """

    def build(self, **kwargs: Any) -> None:
        super().build(**kwargs)
        self._pending_steps: dict[Any, int] = {}
        self._pending_env_steps = 0
        self._pending_minibatches = 0
        self._pending_stats: dict[Any, dict[str, Any]] = {}

    def _create_iterator_if_necessary(self, *, training_data, num_total_minibatches: int = 0,
                                      num_epochs: int = 1, minibatch_size: int | None = None,
                                      shuffle_batch_per_epoch: bool = False, **kwargs: Any):
        if training_data.data_iterators:
            return super()._create_iterator_if_necessary(
                training_data=training_data, num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs, minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch, **kwargs)
        batch = self._make_batch_if_necessary(training_data=training_data)
        for module_id in list(batch.policy_batches):
            if not self.should_module_be_updated(module_id, batch):
                del batch.policy_batches[module_id]
        if not batch.policy_batches:
            return {}
        batch = self._set_slicing_by_batch_id(batch, value=True)
        shuffle = shuffle_batch_per_epoch and num_epochs > 1
        if ShuffledMinibatches.can_cut(batch, self.module) and minibatch_size \
                and not num_total_minibatches:
            return ShuffledMinibatches(batch, num_epochs=num_epochs,
                                       minibatch_size=minibatch_size, shuffle=shuffle)
        if not minibatch_size and num_epochs <= 1:
            return MiniBatchDummyIterator(batch)
        return MiniBatchCyclicIterator(batch, num_epochs=num_epochs,
                                       minibatch_size=minibatch_size or batch.count,
                                       shuffle_batch_per_epoch=shuffle and bool(minibatch_size),
                                       num_total_minibatches=num_total_minibatches)

    def _log_steps_trained_metrics(self, batch) -> None:
        for module_id, module_batch in batch.policy_batches.items():
            self._pending_steps[module_id] = (self._pending_steps.get(module_id, 0)
                                              + len(module_batch))
        self._pending_env_steps += batch.env_steps()
        self._pending_minibatches += 1

    def _log_metrics(self, batch) -> None:
        return None  # Ray's Prometheus step counters: summed into the flush below

    def after_gradient_based_update(self, *, timesteps) -> None:
        self._flush_minibatch_bookkeeping()
        super().after_gradient_based_update(timesteps=timesteps)

    def _flush_minibatch_bookkeeping(self) -> None:
        """What RLlib logs per minibatch, logged once with the same reduced values."""
        for module_id, stats in self._pending_stats.items():
            self.metrics.log_dict(_loss_statistics(**stats), key=module_id, window=1)
        if self._pending_minibatches:
            self._log_summed_steps()
        self._pending_stats, self._pending_steps = {}, {}
        self._pending_env_steps = self._pending_minibatches = 0

    def _log_summed_steps(self) -> None:
        """``Learner._log_steps_trained_metrics`` and ``_log_metrics`` over all minibatches
        of the update: sums logged once, the mean minibatch size as its mean."""
        log, env_steps = self.metrics.log_value, self._pending_env_steps
        for module_id, steps in self._pending_steps.items():
            log((module_id, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            log((module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), steps / self._pending_minibatches,
                reduce="mean")
            log((module_id, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum")
            log((module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME), steps, reduce="lifetime_sum",
                with_throughput=True)
            log((ALL_MODULES, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum",
                with_throughput=True)
            log((ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), steps,
                reduce="lifetime_sum", with_throughput=True)
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED), env_steps, reduce="sum", with_throughput=True)
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME), env_steps, reduce="lifetime_sum",
            with_throughput=True)
        if env_steps > 0:
            self._metrics_all_modules_num_env_steps_trained.inc(value=env_steps)
            self._metrics_all_modules_num_module_steps_trained.inc(
                value=sum(self._pending_steps.values()))

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id,
                                optimizer=torch.optim.Adam(params, fused=True),
                                params=params, lr_or_lr_schedule=config.lr)

    def apply_gradients(self, gradients_dict) -> None:
        grads = [grad for grad in gradients_dict.values() if grad is not None]
        plain = self._grad_scalers is None and self._lr_scheduler_classes is None
        # The sum of all gradients is finite exactly when no element is NaN or inf, or (rarely)
        # when finite ones overflow it: then RLlib's per-parameter check runs, as always.
        if not (plain and grads and bool(torch.isfinite(
                torch.cat([grad.reshape(-1) for grad in grads]).sum()))):
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
        copies and syncs), a categorical policy's terms from ``log_softmax``, and the logged
        statistics kept for ``_flush_minibatch_bookkeeping`` instead of logged here."""
        module = self.module[module_id].unwrapped()
        if Columns.LOSS_MASK in batch:
            weights = batch[Columns.LOSS_MASK].to(torch.float32)
            weights = weights / weights.sum()
        else:
            weights = None
        logits, prev_logits = fwd_out[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTION_DIST_INPUTS]
        actions = batch[Columns.ACTIONS]
        if isinstance(module.action_space, gym.spaces.Discrete):
            # TorchCategorical's logp, entropy and kl: torch.distributions.Categorical's
            # formulas on the normalised logits, their edge cases included (a probability
            # that underflows to 0 makes the KL infinite, as it makes a diverging run's).
            logp_all = torch.log_softmax(logits, dim=-1)
            probs = logp_all.exp()
            curr_logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            curr_entropy = -(torch.clamp(logp_all, min=torch.finfo(logp_all.dtype).min)
                             * probs).sum(-1)
            if config.use_kl_loss:
                prev_logp_all = torch.log_softmax(prev_logits, dim=-1)
                prev_probs = prev_logp_all.exp()
                terms = torch.where(probs == 0, torch.inf,
                                    prev_probs * (prev_logp_all - logp_all))
                kl = torch.where(prev_probs == 0, 0.0, terms).sum(-1)
        else:
            curr = module.get_train_action_dist_cls().from_logits(logits)
            curr_logp, curr_entropy = curr.logp(actions), curr.entropy()
            if config.use_kl_loss:
                kl = module.get_exploration_action_dist_cls().from_logits(prev_logits).kl(curr)
        logp_ratio = torch.exp(curr_logp - batch[Columns.ACTION_LOGP])
        mean_kl_loss = (_mean(kl, weights) if config.use_kl_loss
                        else torch.tensor(0.0, device=logp_ratio.device))
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
        total_loss = _mean(-surrogate_loss + config.vf_loss_coeff * vf_loss_clipped
                           - entropy_coeff * curr_entropy, weights)
        if config.use_kl_loss:
            total_loss += self.curr_kl_coeffs_per_module[module_id] * mean_kl_loss
        self._pending_stats[module_id] = {
            "weights": weights, "critic": config.use_critic, "surrogate": surrogate_loss,
            "vf_loss": vf_loss, "vf_loss_clipped": vf_loss_clipped, "entropy": curr_entropy,
            "kl": mean_kl_loss, "targets": batch[Postprocessing.VALUE_TARGETS],
            "values": value_fn_out}
        return total_loss


def _mean(data: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """RLlib's masked mean (``possibly_masked_mean``) as a weighted sum."""
    return torch.mean(data) if weights is None else torch.dot(data, weights)


@torch.no_grad()
def _loss_statistics(*, weights, critic, surrogate, vf_loss, vf_loss_clipped, entropy, kl,
                     targets, values) -> dict[str, torch.Tensor]:
    """The statistics RLlib's PPO loss logs, of one minibatch."""
    return {
        POLICY_LOSS_KEY: -_mean(surrogate, weights),
        VF_LOSS_KEY: _mean(vf_loss_clipped, weights) if critic else vf_loss_clipped,
        LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: _mean(vf_loss, weights) if critic else vf_loss,
        LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(targets, values),
        ENTROPY_KEY: _mean(entropy, weights),
        LEARNER_RESULTS_KL_KEY: kl.detach(),
    }


class ShuffledMinibatches:
    """RLlib's ``MiniBatchCyclicIterator`` for one flat module batch of tensors, cut from
    whole tensors: the same rows in the same order (the first epoch in order; at every wrap
    the rows are permuted with ``np.random.permutation``, as ``SampleBatch.shuffle`` does),
    minibatches as views where they do not wrap."""

    def __init__(self, batch: MultiAgentBatch, *, num_epochs: int, minibatch_size: int,
                 shuffle: bool) -> None:
        ((self._module_id, module_batch),) = batch.policy_batches.items()
        self._columns = dict(module_batch)
        self._rows = len(module_batch)
        self._env_steps = len(batch)
        self._num_epochs, self._size, self._shuffle = num_epochs, minibatch_size, shuffle

    @staticmethod
    def can_cut(batch: MultiAgentBatch, module) -> bool:
        """One module batch, no sequences, every column a tensor with a row per sample."""
        if len(batch.policy_batches) != 1:
            return False
        ((module_id, module_batch),) = batch.policy_batches.items()
        rows = len(module_batch)
        return (rows > 0 and not module[module_id].is_stateful()
                and module_batch.get(SampleBatch.SEQ_LENS) is None
                and all(isinstance(v, torch.Tensor) and v.dim() > 0 and len(v) == rows
                        for v in module_batch.values()))

    def __iter__(self):
        columns, rows, start, epochs = self._columns, self._rows, 0, 0
        while epochs < self._num_epochs:
            need, parts = self._size, []
            while start + need >= rows:
                parts.append({k: v[start:] for k, v in columns.items()})
                need -= rows - start
                start = 0
                epochs += 1
                if self._shuffle:
                    order = torch.from_numpy(np.random.permutation(rows))
                    columns = {k: v[order] for k, v in columns.items()}
            if need > 0:
                parts.append({k: v[start:start + need] for k, v in columns.items()})
                start += need
            minibatch = parts[0] if len(parts) == 1 else {
                k: torch.cat([part[k] for part in parts]) for k in columns}
            yield MultiAgentBatch({self._module_id: SampleBatch(minibatch)}, self._env_steps)


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


class TrialEnvRunner(SingleAgentEnvRunner):
    """RLlib's single-agent env runner with the per-step loop of ``_sample`` trimmed, for a
    trial's PPO (``LastObservations`` and ``ActionsToNumpy`` as its connector pipelines).

    The same steps in the same order as ``SingleAgentEnvRunner._sample`` (ray 2.60) when
    sampling timesteps, without what a trial does not use per step: the two connector
    pieces are called directly (no pipeline wrappers logging episode lengths and timing every
    piece), the module's forward pass is not timed, batched observations and actions are
    split by row (not ``tree``-unbatched), and ``on_episode_step`` is called only where a
    callback defines it. Episodes, episode callbacks, step counters, episode cuts and the
    env-failure handling are RLlib's. Anything else (episodes by count, random actions,
    other connectors) runs RLlib's own loop."""

    def _sample(self, *, num_timesteps=None, num_episodes=None, explore, random_actions=False,
                force_reset=False):
        pieces = self._lean_pieces()
        if num_timesteps is None or random_actions or pieces is None:
            return super()._sample(num_timesteps=num_timesteps, num_episodes=num_episodes,
                                   explore=explore, random_actions=random_actions,
                                   force_reset=force_reset)
        to_module_piece, to_env_piece = pieces
        step_callbacks = self._listens("on_episode_step")
        ts, done = 0, []
        if force_reset or self._needs_initial_reset:
            self._reset_envs_and_episodes(explore)
        while ts < num_timesteps:
            to_module, self._cached_to_module = self._cached_to_module, None
            if explore:
                runners = self.config.num_env_runners or 1
                to_env = self.module.forward_exploration(
                    to_module, t=(self.num_env_steps_sampled_lifetime // runners + ts) * runners)
            else:
                to_env = self.module.forward_inference(to_module)
            to_env = to_env_piece(rl_module=self.module, batch=to_env,
                                  episodes=self._ongoing_episodes, explore=explore,
                                  shared_data=self._shared_data)
            actions = to_env.pop(Columns.ACTIONS)
            results = self._try_env_step(to_env.pop(Columns.ACTIONS_FOR_ENV, actions))
            if results == ENV_STEP_FAILURE:
                ts = 0
                self._reset_envs_and_episodes(explore)
                continue
            observations, rewards, terminateds, truncateds, infos = results
            episodes, started = self._ongoing_episodes, set()
            for i, episode in enumerate(episodes):
                if not episode.is_reset:
                    episode.add_env_reset(observation=observations[i], infos=infos[i])
                    started.add(i)
                    continue
                ts += 1
                outputs = {key: value[i] for key, value in to_env.items()}
                outputs[WEIGHTS_SEQ_NO] = self._weights_seq_no
                episode.add_env_step(observation=observations[i], action=actions[i],
                                     reward=rewards[i], infos=infos[i],
                                     terminated=terminateds[i], truncated=truncateds[i],
                                     extra_model_outputs=outputs)
            self._cached_to_module = to_module_piece(
                rl_module=self.module, batch={}, episodes=self._ongoing_episodes,
                explore=explore, shared_data=self._shared_data)
            for i in range(self.num_envs):
                if i in started:
                    self._make_on_episode_callback("on_episode_start", i, self._ongoing_episodes)
                elif step_callbacks:
                    self._make_on_episode_callback("on_episode_step", i, self._ongoing_episodes)
                if self._ongoing_episodes[i].is_done:
                    self._make_on_episode_callback("on_episode_end", i, self._ongoing_episodes)
                    episode = self._ongoing_episodes[i]
                    done.append(episode.to_numpy() if self.episodes_to_numpy else episode)
                    self._new_episode(i, self._ongoing_episodes)
        return self._finish_sample(ts, done)

    def _finish_sample(self, ts: int, done: list) -> list:
        """The end of ``SingleAgentEnvRunner._sample`` for timesteps: cut the ongoing
        episodes (their continuations go on next call), count, return done + ongoing."""
        self._done_episodes_for_metrics.extend(done)
        continuations = [episode.cut(len_lookback_buffer=self.config.episode_lookback_horizon)
                         for episode in self._ongoing_episodes]
        ongoing = []
        for episode in self._ongoing_episodes:
            if episode.t == 0:
                continue
            episode.validate()
            self._ongoing_episodes_for_metrics[episode.id_].append(episode)
            ongoing.append(episode.to_numpy() if self.episodes_to_numpy else episode)
        self._ongoing_episodes = continuations
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, len(done))
        return done + ongoing

    def _lean_pieces(self):
        """This runner's one-piece connectors, or None where its pipelines are others."""
        to_module = getattr(self._env_to_module, "connectors", None)
        to_env = getattr(self._module_to_env, "connectors", None)
        if (to_module and to_env and len(to_module) == 1 and len(to_env) == 1
                and isinstance(to_module[0], LastObservations)
                and isinstance(to_env[0], ActionsToNumpy)):
            return to_module[0], to_env[0]
        return None

    def _listens(self, which: str) -> bool:
        """Whether any callback object overrides ``which``, or a callable is registered."""
        objects = self._callbacks if isinstance(self._callbacks, list) else [self._callbacks]
        overridden = any(getattr(type(c), which, None) is not getattr(RLlibCallback, which)
                         for c in objects if c is not None)
        return overridden or bool(getattr(self.config, f"callbacks_{which}", None))


def speed_up(config):
    """``config`` (a PPOConfig of a trial) with the module and connectors above."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    return (
        config
        .learners(learner_class=TrialPPOLearner)
        .env_runners(env_runner_cls=TrialEnvRunner)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=TrialPPOModule))
        .env_runners(env_to_module_connector=lambda env, spaces=None, device=None:
                     [LastObservations()],
                     add_default_connectors_to_env_to_module_pipeline=False,
                     module_to_env_connector=lambda env, spaces=None: [ActionsToNumpy()],
                     add_default_connectors_to_module_to_env_pipeline=False)
    )
