"""Exponential moving average of a model's weights, as RT-DETR's and D-FINE's ModelEMA keep it."""
from __future__ import annotations

import copy
import math
from typing import Any


class ModelEma:
    """A copy of `model` whose floating-point weights and buffers follow the trained ones:
    ema = d * ema + (1 - d) * model after every optimizer step, with d = decay * (1 - exp(-updates / warmups)).

    The ramp is the one of lyuwenyu/RT-DETR `rtdetrv2_pytorch/src/optim/ema.py` and Peterande/D-FINE
    `src/optim/ema.py` (their configs: decay 0.9999; warmups 2000 in RT-DETRv2's `include/rtdetrv2_r50vd.yml`,
    1000 in D-FINE's `configs/dfine/include/optimizer.yml`): early on d is small, so the average starts near the
    current model instead of the random init. Integer buffers (BatchNorm's step count) are copied, not averaged.
    """

    def __init__(self, model, decay: float, warmups: int, updates: int = 0):
        self.module = copy.deepcopy(getattr(model, "module", model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay, self.warmups, self.updates = decay, warmups, updates

    def factor(self) -> float:
        """The decay d of the next update (0 <= d < decay)."""
        return self.decay * (1 - math.exp(-self.updates / max(self.warmups, 1))) if self.warmups else self.decay

    def update(self, model) -> None:
        import torch

        self.updates += 1
        d = self.factor()
        live = getattr(model, "module", model).state_dict()
        with torch.no_grad():
            for name, value in self.module.state_dict().items():
                if value.dtype.is_floating_point:
                    value.mul_(d).add_(live[name].detach(), alpha=1 - d)
                else:
                    value.copy_(live[name])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
