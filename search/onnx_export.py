"""Export a trial's greedy policy network to ONNX (the tutorial's deployment path)."""
from __future__ import annotations

from pathlib import Path

ONNX_FILE = "policy.onnx"


def export_onnx(export_dir: Path) -> str:
    """Write ``policy.onnx`` next to an exported checkpoint: input ``obs`` (batch, obs_dim)
    float32, output ``action`` (batch,) int64, the greedy action (0 cash, 1 long)."""
    import torch

    from trainables.rllib_trainable import load_module

    module = load_module(export_dir / "checkpoint")
    obs_dim = int(module.observation_space.shape[0])

    class GreedyPolicy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            out = self.module.forward_inference({"obs": obs})
            scores = out["action_dist_inputs"] if "action_dist_inputs" in out else out["qf_preds"]
            return scores.argmax(dim=-1)

    policy = GreedyPolicy().eval()
    path = export_dir / ONNX_FILE
    with torch.no_grad():
        torch.onnx.export(policy, (torch.zeros(1, obs_dim),), str(path), input_names=["obs"],
                          output_names=["action"], dynamic_axes={"obs": {0: "batch"},
                                                                  "action": {0: "batch"}},
                          dynamo=False)
    return str(path)
