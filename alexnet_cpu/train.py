"""Training and evaluation: epochs, metrics, checkpoints, resume, logs.

One epoch: for each batch, forward, softmax cross-entropy, backward, SGD step; then
validation (loss, top-1, top-k with k = min(5, classes)), the LR schedule, the files and a
log line. `-save PATH` holds the weights of the best validation epoch so far (by top-1,
then loss), PATH.last.safetensors those of the latest epoch, PATH.ckpt.safetensors the
latest training state for resuming. Every random choice derives from the seed and the
epoch/step counters, so a run resumed from the checkpoint of epoch k ends with the same
weights as an uninterrupted run.
"""
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

import numpy as np

from . import _C, _threads, distributed
from .checkpoint import check_train_state, load, save, save_checkpoint
from .confusion import class_report
from .data import DataLoader, ImageFolder, compute_stats
from .layers import Dropout
from .loss import softmax, softmax_cross_entropy
from .model import INITS, MIN_INPUT, VARIANTS, alexnet
from .optim import SCHEDULES, SGD, PlateauLR, make_schedule
from .step import train_step
from .plot import plot_history
from .weights import WeightFileError


def option(default, help, flag=None, **meta):
    """A TrainConfig field that is also a `train` flag: -FLAG (default: the field's name)
    with this help; meta may give choices, min (inclusive), above (exclusive), below
    (exclusive). Booleans: off by default -> a switch, on by default -> -FLAG on|off."""
    return field(default=default, metadata={"help": help, "flag": flag, **meta})


@dataclass
class TrainConfig:
    """Everything a training run depends on. Each field with help is a flag of
    `alexnet-cpu train` (cli.py builds the parser from these fields), checked by check()."""
    train_dir: Optional[str] = option(
        None, "training folder (one sub-folder per class), or a root holding train/ and "
              "val/; default ./images, else the built-in data set", flag="data")
    val_dir: Optional[str] = option(
        None, "validation folder (default: hold out -val_fraction of the data)", flag="val")
    val_fraction: float = option(0.1, "share of each class held out for validation "
                                      "when there is no -val", min=0, below=1)
    save: str = option("alexnet.safetensors",
                       "weight file of the best validation epoch (the last epoch's go to "
                       "PATH.last.safetensors, the checkpoint to PATH.ckpt.safetensors)")
    variant: str = option("paper", "network variant", choices=VARIANTS)
    size: int = option(224, "input size in pixels", min=MIN_INPUT)
    batch_size: int = option(128, "images per step", flag="batchsize", min=1)
    epochs: int = option(90, "total epochs", min=1)
    lr: float = option(0.01, "learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", min=0, below=1)
    weight_decay: float = option(5e-4, "weight decay", flag="wd", min=0)
    schedule: str = option("plateau", "LR schedule: plateau divides by 10 when the "
                                      "validation metric stalls; step every -step_size "
                                      "epochs", choices=tuple(SCHEDULES))
    monitor: str = option("loss", "validation metric the plateau schedule watches",
                          choices=PlateauLR.MONITORS)
    threshold: float = option(0.01, "relative change of the metric that counts as an "
                                    "improvement (plateau)", min=0)
    patience: int = option(0, "epochs without improvement before an LR drop (plateau; "
                              "default 0: max(3, epochs / 5))", min=0)
    min_epochs: int = option(0, "fewest epochs at each LR before the next drop (plateau)",
                             min=0)
    min_lr: Optional[float] = option(None, "the plateau schedule's lowest LR "
                                           "(default: lr / 1000, three drops)", min=0)
    warmup: float = option(1.0, "epochs of linear LR warm-up (0 for none); no plateau "
                                "drop before it ends", min=0)
    step_size: int = option(30, "epochs per LR drop with -schedule step", min=1)
    early_stop: bool = option(False, "stop when the metric stalls at the lowest LR (plateau)")
    dropout: float = option(0.5, "dropout probability before fc6 and fc7", min=0, below=1)
    init: str = option("kaiming", "weight initialisation", choices=INITS)
    bias_value: float = option(1.0, "bias of conv2/4/5 and fc6/7 with -init paper",
                               flag="bias")
    seed: int = option(0, "seed of every random choice", min=0)
    threads: Optional[int] = option(None, "compute threads (default: all cores)", min=1)
    precision: str = option(_C.get_precision(), "what the GEMMs multiply in (bf16: "
                                                "AVX512_BF16; fp32 is bitwise reproducible)",
                            choices=_C.PRECISIONS)
    workers: int = option(2, "image decoding threads", min=0)
    crop: bool = option(True, "random crops")
    flip: bool = option(True, "random horizontal flips")
    lighting: bool = option(True, "PCA lighting noise")
    tencrop: bool = option(False, "validate with the paper's 10 crops")
    cache: bool = option(False, "keep decoded images in memory")
    load_pretrained: Optional[str] = option(None, "start from these weights (tensors of "
                                                  "matching name and shape)")
    resume: Optional[str] = option(None, "continue from a checkpoint (*.ckpt.safetensors)")
    log: Optional[str] = option(None, "metrics log (JSON lines; a PNG plot is written "
                                      "beside it)")
    quiet: bool = option(False, "no progress and epoch lines")
    # Data-parallel (MPI): batch_size is the global batch of one SGD step.
    mpi: Optional[bool] = option(None, "data-parallel over MPI (default: on when mpiexec "
                                       "starts more than one process); -batchsize is global")
    accumulate: int = option(1, "micro-batches per step: one gradient reduce per K", min=1)
    bucket_mb: float = option(distributed.DEFAULT_BUCKET_MB, "MB of gradients per MPI "
                                                             "Allreduce", above=0)
    overlap: Optional[bool] = option(None, "reduce gradients during the backward pass "
                                           "(default: on when ranks span machines)")
    check_every: int = option(100, "steps between checks that every rank holds the same "
                                   "weights", min=1)
    timeout: float = option(distributed.DEFAULT_TIMEOUT, "seconds stuck in a collective "
                                                          "before the job is aborted (0: never)",
                            min=0)
    extra: dict = field(default_factory=dict)

    @classmethod
    def options(cls):
        """The fields that are flags: [(field, flag name)]."""
        return [(f, f.metadata["flag"] or f.name) for f in fields(cls) if "help" in f.metadata]

    def check(self):
        """Raise ValueError naming the flag of the first value out of its range."""
        for f, flag in self.options():
            v, m = getattr(self, f.name), f.metadata
            if v is None:
                continue
            if "choices" in m and v not in m["choices"]:
                raise ValueError(f"-{flag}: expected one of {', '.join(m['choices'])}, got {v!r}")
            for key, bad, words in (("min", lambda a, b: a < b, ">="),
                                    ("above", lambda a, b: a <= b, ">"),
                                    ("below", lambda a, b: a >= b, "<")):
                if key in m and (bad(v, m[key]) or not math.isfinite(v)):
                    raise ValueError(f"-{flag} must be {words} {m[key]}, got {v}")
        return self


def checkpoint_path(save_path):
    """model.safetensors -> model.ckpt.safetensors (weights + optimiser + training state)."""
    return _beside(save_path, "ckpt")


def last_path(save_path):
    """model.safetensors -> model.last.safetensors (the latest epoch's weights)."""
    return _beside(save_path, "last")


def _beside(save_path, tag):
    root, ext = os.path.splitext(save_path)
    return f"{root}.{tag}{ext or '.safetensors'}"


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of samples whose label is among the top-k logits, for each k."""
    order = np.argsort(-logits, axis=1)
    return [int((order[:, :min(k, logits.shape[1])] == labels[:, None]).any(axis=1).sum())
            for k in ks]


def evaluate(net, loader, tencrop=False, k=5):
    """Loss, top-1 and top-k accuracy over a loader, in eval mode (dropout off).
    With tencrop the loader yields (B, 10, C, H, W) and softmax outputs are averaged."""
    was_training = net.training
    net.eval()
    n = loss_sum = c1 = ck = 0
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
        k1, kk = topk_correct(scores, y, (1, k))
        n += len(y)
        loss_sum += loss * len(y)
        c1 += k1
        ck += kk
    net.train(was_training)
    if n == 0:
        return {"loss": math.nan, "top1": math.nan, "topk": math.nan, "k": k, "n": 0}
    return {"loss": loss_sum / n, "top1": c1 / n, "topk": ck / n, "k": k, "n": n}


def _better(val, best):
    """Is this validation result better than the best record: top-1, then loss."""
    if best is None or not math.isfinite(val["top1"]):
        return True      # no validation data: the latest epoch is the best we know
    return (val["top1"], -val["loss"]) > (best["val_top1"], -best["val_loss"])


class Progress:
    """One status line on a terminal (rewritten in place), sparse lines otherwise."""

    def __init__(self, total, quiet=False, stream=None):
        # sys.stderr now, not at import: it may have been replaced since (pytest's capture)
        self.total, self.quiet, self.stream = total, quiet, stream or sys.stderr
        self.tty = self.stream.isatty()
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
    train.check_classes(minimum=2)
    if val_dir is not None:
        val = ImageFolder(val_dir, classes=train.classes)
        return train, val, f"{train_dir} (val {val_dir})"
    train, val = train.split(cfg.val_fraction, cfg.seed)
    return train, val, f"{train_dir} ({cfg.val_fraction:.0%} held out for validation)"


def fit(cfg, model=None):
    """Train as configured; returns the history (one dict per epoch). model(num_classes)
    -> Net builds the net to train (default: cfg.variant's AlexNet; a resumed run rebuilds
    it the same way before loading the checkpoint). Under mpiexec every rank runs this:
    rank r trains on its rows of each global batch; an error on any rank ends the job
    (distributed.World.abort_on_error)."""
    cfg.check()
    if not cfg.train_dir:
        raise ValueError("no training folder given (TrainConfig.train_dir, -data)")
    world = distributed.init(cfg.mpi, cfg.timeout)
    with world.abort_on_error():
        run = _prepare(cfg, world, model)
        for epoch in range(run.start_epoch, cfg.epochs):
            if run.sched.finished:
                run.say("early stop: the validation metric stopped improving at the lowest LR")
                break
            _epoch(run, epoch)
        _finish(run)
        return run.history


@dataclass
class _Run:
    """What the epochs of one fit() share."""
    cfg: TrainConfig
    world: object
    net: object
    opt: SGD
    sched: object
    reducer: object
    train_loader: DataLoader
    val_loader: DataLoader
    classes: list
    stats: dict
    say: object
    quiet: bool
    start_epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    best: Optional[dict] = None

    @property
    def k(self):
        return min(5, len(self.classes))

    @property
    def log_path(self):
        return self.cfg.log or os.path.splitext(self.cfg.save)[0] + ".log.jsonl"

    def beside_log(self, suffix):
        return os.path.splitext(self.log_path)[0].removesuffix(".log") + suffix


def _prepare(cfg, world, model):
    """The run's net (new, pretrained or resumed), optimiser, schedule, reducer and
    loaders, announced."""
    quiet = cfg.quiet or not world.is_root
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if cfg.threads or world.local_size > 1:
        # Ranks sharing a machine share its cores.
        _threads.set_num_threads(cfg.threads or max(1, os.cpu_count() // world.local_size))
    resumed = _resume(cfg, model) if cfg.resume else None
    train_ds, val_ds, where = _resolve_data(cfg)
    classes = train_ds.classes
    if resumed:
        net, meta, tensors, state = resumed
        if meta.get("classes") != classes:
            raise ValueError(f"{cfg.resume}: checkpoint classes differ from the data's")
        stats = meta["preprocess"]
    else:
        net = (model(len(classes)) if model is not None else
               alexnet(cfg.variant, num_classes=len(classes), init=cfg.init,
                       bias_value=cfg.bias_value, dropout=cfg.dropout, seed=cfg.seed))
        if cfg.load_pretrained:
            _load_pretrained(net, cfg.load_pretrained, say, model)
        stats = world.bcast(lambda: _stats_dict(compute_stats(train_ds, cfg.size,
                                                              seed=cfg.seed)))
    net.set_precision(cfg.precision).train()
    opt = SGD(net, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = make_schedule(cfg.schedule, cfg.lr, **_schedule_args(cfg))
    run = _Run(cfg, world, net, opt, sched, None, *_loaders(cfg, stats, train_ds, val_ds,
                                                            world), classes, stats, say, quiet)
    if resumed:
        try:
            opt.load_state_dict(tensors)
            sched.load_state_dict(state["schedule"])
        except ValueError as e:
            raise WeightFileError(f"{cfg.resume}: {e}") from None
        run.start_epoch, run.step, run.history = state["epoch"], state["step"], state["history"]
        # checkpoints before best/last files kept only the best top-1 (a number)
        run.best = state["best"] if isinstance(state["best"], dict) else None
    world.broadcast_parameters(net, opt)
    run.reducer = world.gradient_reducer(net, cfg.bucket_mb, cfg.overlap)
    if min(cfg.batch_size, len(train_ds)) < world.size * cfg.accumulate:
        raise ValueError(f"-batchsize {cfg.batch_size} (or the {len(train_ds)} training "
                         f"images) must be >= processes x -accumulate = "
                         f"{world.size} x {cfg.accumulate}")
    _announce(run, where)
    return run


def _resume(cfg, model):
    """(net, metadata, tensors, training state) of the checkpoint cfg.resume; the
    config takes the interrupted run's values of what shaped its data order and model."""
    net, meta, tensors = load(cfg.resume, with_tensors=True, model=model)
    if meta.get("kind") != "checkpoint":
        raise ValueError(f"{cfg.resume}: not a checkpoint (no optimiser state); "
                         f"use -load_pretrained for plain weights")
    state = meta.get("train")
    check_train_state(cfg.resume, state)
    for key in ("variant", "size", "batch_size", "seed", "val_fraction"):
        setattr(cfg, key, state["config"][key])
    cfg.dropout = state["config"].get("dropout", 0.5)   # absent before it was a flag
    for _, layer in net.layers:
        if isinstance(layer, Dropout):
            layer.p = cfg.dropout
    if not all(k in meta.get("preprocess", {}) for k in ("mean", "std", "eigval", "eigvec")):
        raise WeightFileError(f"{cfg.resume}: checkpoint lacks preprocess statistics")
    return net, meta, tensors, state


def _loaders(cfg, stats, train_ds, val_ds, world):
    """(training loader, validation loader) of this rank's rows of each batch."""
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    eigval, eigvec = np.asarray(stats["eigval"]), np.asarray(stats["eigvec"])
    shard = (world.rank, world.size)
    train = DataLoader(train_ds, cfg.batch_size, cfg.size, mean, std, train=True,
                       shuffle=True, seed=cfg.seed, eigval=eigval, eigvec=eigvec,
                       crop=cfg.crop, flip=cfg.flip, lighting=cfg.lighting,
                       drop_last=len(train_ds) > cfg.batch_size, workers=cfg.workers,
                       cache=cfg.cache, shard=shard)
    val = DataLoader(val_ds, cfg.batch_size, cfg.size, mean, std, train=False,
                     shuffle=False, seed=cfg.seed, workers=cfg.workers,
                     cache=cfg.cache, ten_crop=cfg.tencrop, shard=shard)
    return train, val


def _announce(run, where):
    cfg, net, say, world = run.cfg, run.net, run.say, run.world
    info = _threads.cpu_info()
    say(f"alexnet-cpu: variant {net.variant}, {net.num_parameters():,} parameters, "
        f"{len(run.classes)} classes, input {cfg.size}x{cfg.size}")
    say(f"data: {where}: {len(run.train_loader.dataset)} train / "
        f"{len(run.val_loader.dataset)} val images")
    say(f"engine: {info['isa']} kernels, {net.precision}, {info['threads']} threads; "
        f"batch {cfg.batch_size}, "
        f"lr {cfg.lr:g}, momentum {cfg.momentum:g}, weight decay {cfg.weight_decay:g}, "
        f"schedule {_describe(run.sched)}")
    say(f"files: best epoch -> {cfg.save}, last epoch -> {last_path(cfg.save)}, "
        f"checkpoint -> {checkpoint_path(cfg.save)}")
    if world.size > 1 or cfg.accumulate > 1:
        say(f"data-parallel: {world.size} processes (rank:pid@host {world.pids()}), "
            f"{cfg.accumulate} micro-batch(es) per step, gradient buckets {cfg.bucket_mb:g} MB"
            f"{', overlapped with backward' if run.reducer.overlap else ', after backward'}")
    if run.start_epoch:
        say(f"resuming from {cfg.resume} after epoch {run.start_epoch}")


def _train_epoch(run, epoch):
    """One pass over the training data -> (images, loss sum, correct) of all ranks and
    this rank's img/s (the rates of all ranks on a data-parallel run)."""
    cfg, world, loader = run.cfg, run.world, run.train_loader
    t0 = time.perf_counter()
    loader.set_epoch(epoch)
    progress = Progress(len(loader), run.quiet)
    n = loss_sum = correct = n_all = 0
    for i, (x, y) in enumerate(loader):
        # Linear warm-up over the first `warmup` epochs keeps He-initialised
        # AlexNet from diverging in its first steps at lr 0.01.
        ramp = (run.step + 1) / (cfg.warmup * len(loader)) if cfg.warmup > 0 else 1.0
        run.opt.lr = run.sched.lr * min(1.0, ramp)
        total = int(world.allreduce([len(y)])[0]) if world.size > 1 else len(y)
        rows = min(cfg.batch_size, len(loader.dataset) - i * cfg.batch_size)
        row0 = distributed.shard_slice(rows, world.rank, world.size).start
        lsum, c = train_step(run.net, run.opt, x, y, run.reducer, cfg.accumulate, total,
                             row0, run.step)
        run.step += 1
        if run.step % cfg.check_every == 0:
            world.check_parameters(run.net, run.step)
        n, n_all, loss_sum, correct = n + len(y), n_all + total, loss_sum + lsum, correct + c
        progress.update(i + 1, n_all, loss_sum / n)
    seconds = time.perf_counter() - t0
    rates = world.allgather(round(n / seconds, 2) if seconds > 0 else 0.0)
    return world.allreduce([n, loss_sum, correct]).tolist(), rates, seconds


def _epoch(run, epoch):
    """Train, validate, step the schedule, write the files and the log line."""
    cfg, world = run.cfg, run.world
    t0 = time.perf_counter()
    (n, loss_sum, correct), rates, train_time = _train_epoch(run, epoch)
    world.check_parameters(run.net, run.step)
    val = world.reduce_eval(evaluate(run.net, run.val_loader, tencrop=cfg.tencrop, k=run.k))
    lr_used = run.opt.lr
    run.sched.step(val)
    row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1),
           "train_acc": correct / max(n, 1), "val_loss": val["loss"],
           "val_top1": val["top1"], "val_topk": val["topk"], "k": run.k, "lr": lr_used,
           "img_per_s": n / train_time if train_time > 0 else 0.0,
           "time": time.perf_counter() - t0,
           "skipped_images": len(run.train_loader.skipped | run.val_loader.skipped)}
    if world.size > 1:
        row["rank_img_per_s"] = rates
    run.history.append(row)
    improved = _better(val, run.best)
    if improved:
        run.best = {"epoch": epoch + 1, "val_top1": val["top1"], "val_loss": val["loss"],
                    "val_topk": val["topk"], "k": run.k}
    if world.is_root:   # every rank reached this point: rank 0 writes the files
        _write_files(run, epoch, row, improved)
        _epoch_line(run, epoch, row, improved)


def _write_files(run, epoch, row, improved):
    """Checkpoint, last and (if improved) best weights, each written atomically; the log
    line and the curves."""
    cfg, net = run.cfg, run.net
    meta = {"classes": run.classes, "input_size": cfg.size, "preprocess": run.stats}
    state = {"epoch": epoch + 1, "step": run.step, "best": run.best, "history": run.history,
             "schedule": run.sched.state_dict(),
             "config": {key: v for key, v in asdict(cfg).items() if key != "extra"}}
    save_checkpoint(checkpoint_path(cfg.save), net, run.opt, train=state, **meta)
    save(last_path(cfg.save), net, epoch=epoch + 1, metrics=_metrics(row), **meta)
    if improved:
        save(cfg.save, net, epoch=epoch + 1, metrics=_metrics(row), best=run.best, **meta)
    with open(run.log_path, "a") as f:
        f.write(json.dumps(row) + "\n")
    plot_history(run.history, run.beside_log(".png"))


def _epoch_line(run, epoch, row, improved):
    best, k = run.best, run.k
    run.say(f"epoch {epoch + 1:3d}/{run.cfg.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.3f}  val loss {row['val_loss']:.4f} "
            f"top-1 {row['val_top1']:.3f} top-{k} {row['val_topk']:.3f}  lr {row['lr']:g}  "
            f"{row['img_per_s']:.1f} img/s  {row['time']:.1f}s  " +
            ("best: saved" if improved else
             f"best: epoch {best['epoch']} ({best['val_top1']:.3f})"))


def _finish(run):
    """The last epoch's confusion matrix and the closing lines."""
    cfg, say, best = run.cfg, run.say, run.best
    if run.history and len(run.val_loader.dataset):   # the last epoch's weights
        class_report(run.net, run.val_loader, run.classes, say=say, tencrop=cfg.tencrop,
                     world=run.world, path=run.beside_log(".confusion.png"),
                     title=f"validation, epoch {run.history[-1]['epoch']} (last)")
    skipped = run.train_loader.skipped | run.val_loader.skipped
    if skipped:
        say(f"skipped {len(skipped)} unreadable image(s); see the warnings above")
    if best is not None:
        say(f"best epoch {best['epoch']} (val top-1 {best['val_top1']:.3f}, loss "
            f"{best['val_loss']:.4f}) in {cfg.save}; last epoch in {last_path(cfg.save)}; "
            f"checkpoint {checkpoint_path(cfg.save)}; log {run.log_path}")
def _schedule_args(cfg):
    if cfg.schedule == "step":
        return {"step_size": cfg.step_size}
    if cfg.schedule == "plateau":
        return {"patience": cfg.patience or max(3, cfg.epochs // 5), "monitor": cfg.monitor,
                "threshold": cfg.threshold, "min_lr": cfg.min_lr, "min_epochs": cfg.min_epochs,
                "warmup_epochs": math.ceil(cfg.warmup), "early_stop": cfg.early_stop}
    return {}


def _describe(sched):
    if isinstance(sched, PlateauLR):
        return (f"plateau (val {sched.monitor}, threshold {sched.threshold:g}, patience "
                f"{sched.patience}, min lr {sched.min_lr:g})")
    if sched.name == "step":
        return f"step (x{sched.gamma:g} every {sched.step_size} epochs)"
    return sched.name


def _metrics(row):
    return {key: row[key] for key in ("val_loss", "val_top1", "val_topk", "k", "train_loss")}


def _load_pretrained(net, path, say, model=None):
    """Copy every tensor of matching name and shape (a new classifier head stays fresh);
    a source of the same variant gives its geometry too (conv1 padding, pools, LRN), and
    may be an ONNX graph (load reads .onnx). model: fit's, which built the source."""
    src, _ = load(path, model=model)
    if src.variant == net.variant:
        net.set_geometry(src.geometry)
    theirs = dict(src.named_params())
    kept = 0
    for name, p in net.named_params():
        if name in theirs and theirs[name].shape == p.shape:
            p[...] = theirs[name]
            kept += 1
    say(f"loaded {kept}/{len(net.named_params())} parameter tensors from {path}")


def _stats_dict(stats):
    return {k: np.asarray(v).tolist() for k, v in stats.items()}
