"""SGD with momentum and weight decay in the paper's form, and learning-rate schedules.

    v <- momentum * v - weight_decay * lr * w - lr * grad;   w <- w + v
"""
import math


from . import _C


class SGD:
    """Updates the net's parameter arena (Net.flat) from its gradient arena in one kernel
    call; the momentum buffers are one arena too (velocity: views of it by name)."""

    def __init__(self, net, lr=0.01, momentum=0.9, weight_decay=5e-4):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"SGD: need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        self.net, self.lr, self.momentum, self.weight_decay = net, lr, momentum, weight_decay
        self.velocity_flat = net.new_arena()
        self.velocity = net.views(self.velocity_flat)

    def step(self):
        """Update every parameter from its gradient; the kernel also zeroes the gradient."""
        self.net.invalidate()   # packed weights would go stale: the arena is written directly
        _C.sgd_update(self.net.flat, self.net.grad_flat(), self.velocity_flat, self.lr,
                      self.momentum, self.weight_decay)

    def state_dict(self):
        return {f"optim.velocity.{k}": v for k, v in self.velocity.items()}

    def load_state_dict(self, tensors):
        for k, v in self.velocity.items():
            src = tensors.get(f"optim.velocity.{k}")
            if src is None or src.shape != v.shape:
                raise ValueError(f"checkpoint lacks a momentum buffer for {k} of shape {v.shape}")
            v[...] = src


class Schedule:
    """Base: the learning rate for the next epoch, decided after each epoch from the
    validation metrics {"loss": ..., "top1": ...}."""

    def __init__(self, lr):
        self.lr = lr

    def step(self, metrics):
        """Called once per epoch with the validation metrics; returns the new lr."""
        return self.lr

    def state_dict(self):
        return dict(vars(self))

    def load_state_dict(self, state):
        """Restore a state_dict(); refuses keys or value types this schedule does not have
        (a checkpoint of another schedule, or a corrupt one)."""
        mine = vars(self)
        if not isinstance(state, dict) or set(state) != set(mine):
            raise ValueError(f"schedule state does not match the {self.name} schedule "
                             f"(expected the fields {', '.join(sorted(mine))})")
        for k, v in state.items():
            if not _same_kind(v, mine[k]):
                raise ValueError(f"schedule state: {k} = {v!r} is not a {type(mine[k]).__name__}")
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def finished(self):
        return False


def _same_kind(v, like):
    """v can stand for a state value like `like`: the same kind, numbers finite."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    if like is None or v is None:
        return v is None or number(v)
    if isinstance(like, bool):
        return isinstance(v, bool)
    if isinstance(like, int):
        return isinstance(v, int) and number(v)
    if isinstance(like, float):
        return number(v)
    return type(v) is type(like)


class ConstantLR(Schedule):
    name = "constant"


class StepLR(Schedule):
    """Multiply the lr by gamma every step_size epochs."""
    name = "step"

    def __init__(self, lr, step_size=30, gamma=0.1):
        super().__init__(lr)
        self.base_lr, self.step_size, self.gamma, self.epoch = lr, step_size, gamma, 0

    def step(self, metrics):
        self.epoch += 1
        self.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)
        return self.lr


class PlateauLR(Schedule):
    """Divide the lr by 10 (`factor`) when the monitored validation metric stops improving.

    An epoch improves when the metric beats the best so far by more than `threshold`
    relative to it (loss: below best * (1 - threshold); top1: above best * (1 + threshold)),
    so noise on a small validation set does not count as progress. After `patience` epochs
    without improvement the lr drops, but never during the first `warmup_epochs` epochs, never
    after fewer than `min_epochs` epochs at the current lr, and never below `min_lr`. With
    early_stop, the run is finished when it stalls again at min_lr.

    The paper's recipe (validation error, any improvement, three drops) is
    monitor="top1", threshold=0, min_lr=lr / 1000.
    """
    name = "plateau"
    MONITORS = ("loss", "top1")

    def __init__(self, lr, factor=0.1, patience=3, monitor="loss", threshold=0.01,
                 min_lr=None, min_epochs=0, warmup_epochs=0, early_stop=False):
        super().__init__(lr)
        if monitor not in self.MONITORS:
            raise ValueError(f"monitor: expected one of {', '.join(self.MONITORS)}, got {monitor!r}")
        if not 0 < factor < 1 or patience < 1 or threshold < 0:
            raise ValueError(f"PlateauLR: need 0 < factor < 1, patience >= 1, threshold >= 0; "
                             f"got {factor}, {patience}, {threshold}")
        self.factor, self.patience, self.monitor = float(factor), int(patience), monitor
        self.threshold = float(threshold)
        self.min_lr = float(lr * factor ** 3 if min_lr is None else min_lr)
        self.min_epochs, self.warmup_epochs = int(min_epochs), int(warmup_epochs)
        self.early_stop = bool(early_stop)
        self.best = None        # best monitored value so far (None before the first epoch)
        self.epoch = self.bad_epochs = self.epochs_at_lr = self.drops = 0
        self.stop = False

    def _improved(self, value):
        if self.best is None:
            return True
        if self.monitor == "loss":
            return value < self.best - self.threshold * abs(self.best)
        return value > self.best + self.threshold * abs(self.best)

    def step(self, metrics):
        value = float(metrics[self.monitor])
        self.epoch += 1
        self.epochs_at_lr += 1
        if not math.isfinite(value):
            return self.lr          # no validation data: nothing to judge on
        if self._improved(value):
            self.best, self.bad_epochs = value, 0
            return self.lr
        if self.epoch <= self.warmup_epochs:
            return self.lr          # the warm-up's stalls do not count
        self.bad_epochs += 1
        if self.bad_epochs < self.patience or self.epochs_at_lr < self.min_epochs:
            return self.lr
        self.bad_epochs = 0
        if self.lr > self.min_lr * (1 + 1e-9):
            self.lr = max(self.lr * self.factor, self.min_lr)
            self.drops += 1
            self.epochs_at_lr = 0
        elif self.early_stop:
            self.stop = True
        return self.lr

    @property
    def finished(self):
        return self.stop


SCHEDULES = {"plateau": PlateauLR, "step": StepLR, "constant": ConstantLR}


def make_schedule(name, lr, **kw):
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name](lr, **kw)
