"""Lean mode: train the recipe's 2.16 B-parameter phase 3 within 24 GB.

fp32 AdamW needs 16 bytes per parameter (weight, gradient, two moments):
34.5 GB at 2.16 B. Lean mode keeps only the weights at full size:

- **Adafactor** (``torch.optim.Adafactor``): its second moment is factored into
  a row and a column vector per matrix, and it keeps no first moment;
- **the optimizer step inside backward**: each parameter is updated the moment
  its gradient is complete (a post-accumulate-grad hook) and the gradient is
  freed, so at most one parameter's gradient exists at a time. There is then no
  global gradient norm to clip by; Adafactor clips each update's RMS to 1 (``d``);
- **gradient checkpointing**: only each block's input is kept for backward, the
  block's insides are recomputed (about a third more compute);
- the previous phase's model is freed before training (``free_model``).
"""

from __future__ import annotations

import torch

from .model import GPT


class OptimizerInBackward:
    """One Adafactor per parameter, stepped by a hook as soon as that parameter's gradient is ready.

    Quacks like a ``torch.optim.Optimizer`` where the trainer needs it: ``param_groups``
    (the learning rate is set there, times each group's ``lr_scale``), ``zero_grad``,
    ``step`` and ``state_dict`` / ``load_state_dict`` (for checkpoints).
    """

    def __init__(self, model: GPT, lr: float, weight_decay: float) -> None:
        self.params = list(model.parameters())
        self.optimizers = []
        for p in self.params:
            # torch's Adafactor steps by lr x RMS(param) (a *relative* step). Dividing each parameter's
            # LR by its RMS at the start of the phase makes the first steps the size an Adam step of
            # the phase's LR would have, so the recipe's learning rates mean the same in lean mode.
            scale = 1.0 / max(1e-3, float(p.detach().float().pow(2).mean().sqrt()))
            opt = torch.optim.Adafactor([p], lr=lr * scale, weight_decay=(weight_decay / scale) if p.dim() >= 2 else 0.0)
            opt.param_groups[0]["lr_scale"] = scale  # fixed at the phase's start; saved with the group
            self.optimizers.append(opt)
        self._hooks = [p.register_post_accumulate_grad_hook(self._step_one(o)) for p, o in zip(self.params, self.optimizers)]

    @staticmethod
    def _step_one(opt: torch.optim.Optimizer):
        def hook(param: torch.Tensor) -> None:
            opt.step()
            param.grad = None  # free it at once: this is where the memory is saved

        return hook

    @property
    def param_groups(self) -> list[dict]:
        # read anew each time: load_state_dict replaces each optimizer's group dicts
        return [o.param_groups[0] for o in self.optimizers]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Nothing left to do: every parameter was updated during backward."""

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()

    def state_dict(self) -> dict:
        """One state and one group per parameter, numbered as ``model.parameters()``."""
        state, groups = {}, []
        for i, o in enumerate(self.optimizers):
            sd = o.state_dict()
            if sd["state"].get(0):
                state[i] = sd["state"][0]
            groups.append({**sd["param_groups"][0], "params": [i]})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        for i, o in enumerate(self.optimizers):
            group = {**sd["param_groups"][i], "params": [0]}
            o.load_state_dict({"state": {0: sd["state"][i]} if i in sd["state"] else {}, "param_groups": [group]})


def free_model(model: GPT) -> None:
    """Release a model's tensors even where other references to the module remain."""
    model.to("meta")
