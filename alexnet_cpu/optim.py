"""SGD with momentum and weight decay in the paper's form, and learning-rate schedules.

    v <- momentum * v - weight_decay * lr * w - lr * grad;   w <- w + v
"""
import math

import numpy as np

from . import _C


class SGD:
    def __init__(self, net, lr=0.01, momentum=0.9, weight_decay=5e-4):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"SGD: need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got "
                             f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        self.net, self.lr, self.momentum, self.weight_decay = net, lr, momentum, weight_decay
        self.velocity = {name: np.zeros_like(p) for name, p, _ in net.parameters()}

    def step(self):
        """Update every parameter from its gradient; the kernel also zeroes the gradient."""
        for name, p, g in self.net.parameters():
            _C.sgd_update(p, g, self.velocity[name], self.lr, self.momentum,
                          self.weight_decay)

    def state_dict(self):
        return {f"optim.velocity.{k}": v for k, v in self.velocity.items()}

    def load_state_dict(self, tensors):
        for k, v in self.velocity.items():
            src = tensors.get(f"optim.velocity.{k}")
            if src is None or src.shape != v.shape:
                raise ValueError(f"checkpoint lacks a momentum buffer for {k} of shape {v.shape}")
            v[...] = src


class Schedule:
    """Base: the learning rate after each epoch is decided from the validation metric."""

    def __init__(self, lr):
        self.lr = lr

    def step(self, metric):
        """Called once per epoch with the validation top-1 accuracy; returns the new lr."""
        return self.lr

    def state_dict(self):
        return dict(vars(self))

    def load_state_dict(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def finished(self):
        return False


class ConstantLR(Schedule):
    name = "constant"


class StepLR(Schedule):
    """Multiply the lr by gamma every step_size epochs."""
    name = "step"

    def __init__(self, lr, step_size=30, gamma=0.1):
        super().__init__(lr)
        self.base_lr, self.step_size, self.gamma, self.epoch = lr, step_size, gamma, 0

    def step(self, metric):
        self.epoch += 1
        self.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)
        return self.lr


class PlateauLR(Schedule):
    """The paper's schedule: divide the lr by 10 when the validation metric stops
    improving for `patience` epochs, at most `max_drops` times. With early_stop, the run
    is finished once it plateaus again after the last drop."""
    name = "plateau"

    def __init__(self, lr, factor=0.1, patience=2, max_drops=3, early_stop=False,
                 min_delta=1e-4):
        super().__init__(lr)
        self.factor, self.patience, self.max_drops = factor, patience, max_drops
        self.early_stop, self.min_delta = early_stop, min_delta
        self.best, self.bad_epochs, self.drops, self.stop = -math.inf, 0, 0, False

    def step(self, metric):
        if metric > self.best + self.min_delta:
            self.best, self.bad_epochs = metric, 0
            return self.lr
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs = 0
            if self.drops < self.max_drops:
                self.drops += 1
                self.lr *= self.factor
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
