"""Training and evaluation: epochs, metrics, checkpoints, resume, logs.

One epoch: for each batch, forward, softmax cross-entropy, backward, SGD step; then
validation (loss, top-1, top-5), the LR schedule, a checkpoint and a log line. Every
random choice derives from the seed and the epoch/step counters, so a run resumed from
the checkpoint of epoch k ends with the same weights as an uninterrupted run.
"""
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from . import _threads
from .checkpoint import load, save, save_checkpoint
from .data import DataLoader, ImageFolder, compute_stats
from .loss import softmax, softmax_cross_entropy
from .model import alexnet
from .optim import SGD, make_schedule
from .plot import plot_history


@dataclass
class TrainConfig:
    train_dir: str
    val_dir: Optional[str] = None
    val_fraction: float = 0.1
    save: str = "alexnet.safetensors"
    variant: str = "paper"
    size: int = 224
    batch_size: int = 128
    epochs: int = 90
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    patience: int = 2
    warmup: float = 1.0
    step_size: int = 30
    early_stop: bool = False
    init: str = "kaiming"
    bias_value: float = 1.0
    seed: int = 0
    threads: Optional[int] = None
    precision: str = "fp32"  # what the GEMMs multiply in: fp32 or bf16 (Net.set_precision)
    workers: int = 2
    crop: bool = True
    flip: bool = True
    lighting: bool = True
    tencrop: bool = False
    cache: bool = False
    load_pretrained: Optional[str] = None
    resume: Optional[str] = None
    log: Optional[str] = None
    quiet: bool = False
    extra: dict = field(default_factory=dict)


def checkpoint_path(save_path):
    """model.safetensors -> model.ckpt.safetensors (weights + optimiser + training state)."""
    root, ext = os.path.splitext(save_path)
    return f"{root}.ckpt{ext or '.safetensors'}"


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of samples whose label is among the top-k logits, for each k."""
    order = np.argsort(-logits, axis=1)
    return [int((order[:, :min(k, logits.shape[1])] == labels[:, None]).any(axis=1).sum())
            for k in ks]


def evaluate(net, loader, tencrop=False):
    """Loss and top-1/top-5 accuracy over a loader, in eval mode (dropout off).
    With tencrop the loader yields (B, 10, C, H, W) and softmax outputs are averaged."""
    was_training = net.training
    net.eval()
    n = loss_sum = c1 = c5 = 0
    for x, y in loader:
        if tencrop:
            b = x.shape[0]
            probs = softmax(net.forward(x.reshape((-1,) + x.shape[2:])))
            probs = probs.reshape(b, 10, -1).mean(axis=1)
            logp = np.log(np.maximum(probs, 1e-30))
            loss = float(-logp[np.arange(b), y].mean())
            scores = probs
        else:
            scores = net.forward(x)
            loss, _ = softmax_cross_entropy(scores, y)
        k1, k5 = topk_correct(scores, y)
        n += len(y)
        loss_sum += loss * len(y)
        c1 += k1
        c5 += k5
    net.train(was_training)
    if n == 0:
        return {"loss": math.nan, "top1": math.nan, "top5": math.nan, "n": 0}
    return {"loss": loss_sum / n, "top1": c1 / n, "top5": c5 / n, "n": n}


class Progress:
    """One status line on a terminal (rewritten in place), sparse lines otherwise."""

    def __init__(self, total, quiet=False, stream=sys.stderr):
        self.total, self.quiet, self.stream = total, quiet, stream
        self.tty = stream.isatty()
        self.t0 = time.perf_counter()
        self.last_print = -1

    def update(self, done, images, loss):
        if self.quiet or self.total == 0:
            return
        elapsed = time.perf_counter() - self.t0
        rate = images / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - done) if done else 0.0
        width = 24
        bar = "#" * int(width * done / self.total)
        line = (f"  [{bar:<{width}}] {done}/{self.total}  {rate:6.1f} img/s  "
                f"loss {loss:.4f}  ETA {eta:5.0f}s")
        if self.tty:
            self.stream.write("\r" + line)
            if done == self.total:
                self.stream.write("\r" + " " * len(line) + "\r")
            self.stream.flush()
        elif int(10 * done / self.total) > self.last_print:
            self.last_print = int(10 * done / self.total)
            print(line, file=self.stream, flush=True)


def _resolve_data(cfg):
    """(train dataset, val dataset, description) from the config's folders."""
    train_dir = cfg.train_dir
    val_dir = cfg.val_dir
    if val_dir is None and os.path.isdir(os.path.join(train_dir, "train")):
        # A root holding train/ and val/ folders.
        if os.path.isdir(os.path.join(train_dir, "val")):
            val_dir = os.path.join(train_dir, "val")
        train_dir = os.path.join(train_dir, "train")
    train = ImageFolder(train_dir)
    if val_dir is not None:
        val = ImageFolder(val_dir, classes=train.classes)
        return train, val, f"{train_dir} (val {val_dir})"
    train, val = train.split(cfg.val_fraction, cfg.seed)
    return train, val, f"{train_dir} ({cfg.val_fraction:.0%} held out for validation)"


def fit(cfg):
    """Train as configured; returns the history (one dict per epoch)."""
    say = (lambda *a: None) if cfg.quiet else (lambda *a: print(*a, flush=True))
    if cfg.threads:
        _threads.set_num_threads(cfg.threads)
    start_epoch, history, step, best = 0, [], 0, -math.inf
    if cfg.resume:
        net, meta, tensors = load(cfg.resume, with_tensors=True)
        if meta.get("kind") != "checkpoint":
            raise ValueError(f"{cfg.resume}: not a checkpoint (no optimiser state); "
                             f"use -load_pretrained for plain weights")
        state = meta["train"]
        # What shaped the interrupted run's data order and model must not change.
        for key in ("variant", "size", "batch_size", "seed", "val_fraction"):
            setattr(cfg, key, state["config"][key])
    train_ds, val_ds, where = _resolve_data(cfg)
    classes = train_ds.classes
    if cfg.resume:
        if meta.get("classes") != classes:
            raise ValueError(f"{cfg.resume}: checkpoint classes differ from the data's")
        stats = meta["preprocess"]
        start_epoch, step, best = state["epoch"], state["step"], state["best"]
        history = state["history"]
    else:
        net = alexnet(cfg.variant, num_classes=len(classes), init=cfg.init,
                      bias_value=cfg.bias_value, seed=cfg.seed)
        if cfg.load_pretrained:
            _load_pretrained(net, cfg.load_pretrained, say)
        stats = _stats_dict(compute_stats(train_ds, cfg.size, seed=cfg.seed))

    net.set_precision(cfg.precision)
    opt = SGD(net, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched_kw = {"plateau": {"patience": cfg.patience, "early_stop": cfg.early_stop},
                "step": {"step_size": cfg.step_size}}.get(cfg.schedule, {})
    sched = make_schedule(cfg.schedule, cfg.lr, **sched_kw)
    if cfg.resume:
        opt.load_state_dict(tensors)
        sched.load_state_dict(state["schedule"])

    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    eigval, eigvec = np.asarray(stats["eigval"]), np.asarray(stats["eigvec"])
    train_loader = DataLoader(train_ds, cfg.batch_size, cfg.size, mean, std, train=True,
                              shuffle=True, seed=cfg.seed, eigval=eigval, eigvec=eigvec,
                              crop=cfg.crop, flip=cfg.flip, lighting=cfg.lighting,
                              drop_last=len(train_ds) > cfg.batch_size, workers=cfg.workers,
                              cache=cfg.cache)
    val_loader = DataLoader(val_ds, cfg.batch_size, cfg.size, mean, std, train=False,
                            shuffle=False, seed=cfg.seed, workers=cfg.workers,
                            cache=cfg.cache, ten_crop=cfg.tencrop)
    info = _threads.cpu_info()
    say(f"alexnet-cpu: variant {net.variant}, {net.num_parameters():,} parameters, "
        f"{len(classes)} classes, input {cfg.size}x{cfg.size}")
    say(f"data: {where}: {len(train_ds)} train / {len(val_ds)} val images")
    say(f"engine: {info['isa']} kernels, {net.precision}, {info['threads']} threads; "
        f"batch {cfg.batch_size}, "
        f"lr {opt.lr:g}, momentum {cfg.momentum:g}, weight decay {cfg.weight_decay:g}, "
        f"schedule {cfg.schedule}")
    if start_epoch:
        say(f"resuming from {cfg.resume} after epoch {start_epoch}")

    log_path = cfg.log or os.path.splitext(cfg.save)[0] + ".log.jsonl"
    meta_common = {"classes": classes, "input_size": cfg.size, "preprocess": stats}
    net.train()
    for epoch in range(start_epoch, cfg.epochs):
        if sched.finished:
            say("early stop: validation accuracy stopped improving after the last LR drop")
            break
        t0 = time.perf_counter()
        train_loader.set_epoch(epoch)
        progress = Progress(len(train_loader), cfg.quiet)
        n = loss_sum = correct = 0
        for i, (x, y) in enumerate(train_loader):
            # Linear warm-up over the first `warmup` epochs keeps He-initialised
            # AlexNet from diverging in its first steps at lr 0.01.
            ramp = (step + 1) / (cfg.warmup * len(train_loader)) if cfg.warmup > 0 else 1.0
            opt.lr = sched.lr * min(1.0, ramp)
            logits = net.forward(x)
            loss, dlogits = softmax_cross_entropy(logits, y)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at epoch {epoch + 1} step "
                                         f"{step}: lower the learning rate (-lr)")
            net.backward(dlogits)
            opt.step()
            step += 1
            n += len(y)
            loss_sum += loss * len(y)
            correct += int((logits.argmax(axis=1) == y).sum())
            progress.update(i + 1, n, loss_sum / n)
        train_time = time.perf_counter() - t0
        val = evaluate(net, val_loader, tencrop=cfg.tencrop)
        lr_used = opt.lr
        sched.step(val["top1"])
        best = max(best, val["top1"])
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1),
               "train_acc": correct / max(n, 1), "val_loss": val["loss"],
               "val_top1": val["top1"], "val_top5": val["top5"], "lr": lr_used,
               "img_per_s": n / train_time if train_time > 0 else 0.0,
               "time": time.perf_counter() - t0,
               "skipped_images": len(train_loader.skipped | val_loader.skipped)}
        history.append(row)
        say(f"epoch {epoch + 1:3d}/{cfg.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.3f}  val loss {val['loss']:.4f} top-1 {val['top1']:.3f} "
            f"top-5 {val['top5']:.3f}  lr {lr_used:g}  {row['img_per_s']:.1f} img/s  "
            f"{row['time']:.1f}s")
        train_state = {"epoch": epoch + 1, "step": step, "best": best, "history": history,
                       "schedule": sched.state_dict(),
                       "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}}
        save_checkpoint(checkpoint_path(cfg.save), net, opt, train=train_state, **meta_common)
        save(cfg.save, net, **meta_common)
        with open(log_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        plot_history(history, os.path.splitext(log_path)[0].removesuffix(".log") + ".png")
    skipped = train_loader.skipped | val_loader.skipped
    if skipped:
        say(f"skipped {len(skipped)} unreadable image(s); see the warnings above")
    say(f"saved weights to {cfg.save} (checkpoint {checkpoint_path(cfg.save)}, log {log_path})")
    return history


def _load_pretrained(net, path, say):
    """Copy every tensor of matching name and shape (a new classifier head stays fresh)."""
    src, _ = load(path)
    theirs = dict(src.named_params())
    kept = 0
    for name, p in net.named_params():
        if name in theirs and theirs[name].shape == p.shape:
            p[...] = theirs[name]
            kept += 1
    say(f"loaded {kept}/{len(net.named_params())} parameter tensors from {path}")


def _stats_dict(stats):
    return {k: np.asarray(v).tolist() for k, v in stats.items()}
