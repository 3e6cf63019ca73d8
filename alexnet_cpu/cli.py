"""The `alexnet-cpu` command: train, inference, info, demo.

Options take one dash or two (-batchsize or --batchsize). Errors are one line on stderr
and a non-zero exit.
"""
import argparse
import os
import sys


from . import _C, _threads

SYNTHETIC_NOTE = ("no -data given and no ./images folder: using the built-in procedural "
                  "data set")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(2, f"alexnet-cpu: error: {message} (see '{self.prog} -h')\n")


def _opt(parser, name, **kw):
    parser.add_argument(f"-{name}", f"--{name}", **kw)


def _bool(s):
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {s!r}")


def build_parser():
    p = _Parser(prog="alexnet-cpu",
                                description="Train and run AlexNet on the CPU.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on an image folder (or the built-in data)")
    _opt(t, "batchsize", type=int, default=128, help="images per step (default 128)")
    _opt(t, "epochs", type=int, default=90, help="total epochs (default 90)")
    _opt(t, "save", default="alexnet.safetensors", help="weight file to write")
    _opt(t, "data", help="training folder (one sub-folder per class), or a root holding "
                         "train/ and val/; default ./images, else the built-in data set")
    _opt(t, "val", help="validation folder (default: hold out -val_fraction of the data)")
    _opt(t, "val_fraction", type=float, default=0.1)
    _opt(t, "variant", choices=("paper", "owt"), default="paper")
    _opt(t, "size", type=int, default=224, help="input size in pixels (>= 63; default 224)")
    _opt(t, "lr", type=float, default=0.01)
    _opt(t, "momentum", type=float, default=0.9)
    _opt(t, "wd", type=float, default=5e-4, help="weight decay")
    _opt(t, "schedule", choices=("plateau", "step", "constant"), default="plateau",
         help="plateau: the paper's divide-by-10 when val accuracy stalls (3 times)")
    _opt(t, "patience", type=int, default=2, help="plateau epochs before an LR drop")
    _opt(t, "warmup", type=float, default=1.0,
         help="epochs of linear LR warm-up (default 1; 0 for none)")
    _opt(t, "step_size", type=int, default=30, help="epochs per LR drop for -schedule step")
    _opt(t, "early_stop", action="store_true", help="stop when val accuracy stalls after "
                                                    "the last LR drop")
    _opt(t, "init", choices=("kaiming", "paper"), default="kaiming",
         help="kaiming (default, trains reliably) or paper: N(0, 0.01) weights")
    _opt(t, "bias", type=float, default=1.0, help="bias of conv2/4/5, fc6/7 with -init paper")
    _opt(t, "threads", type=int, help="compute threads (default: all cores)")
    _opt(t, "workers", type=int, default=2, help="image decoding threads")
    _opt(t, "precision", choices=PRECISIONS, default=_C.get_precision(), help=PRECISION_HELP)
    _opt(t, "seed", type=int, default=0)
    _opt(t, "crop", type=_bool, default=True, help="random crops (on/off)")
    _opt(t, "flip", type=_bool, default=True, help="random horizontal flips (on/off)")
    _opt(t, "lighting", type=_bool, default=True, help="PCA lighting noise (on/off)")
    _opt(t, "tencrop", action="store_true", help="validate with the paper's 10 crops")
    _opt(t, "cache", action="store_true", help="keep decoded images in memory")
    _opt(t, "load_pretrained", help="start from these weights (matching tensors)")
    _opt(t, "resume", help="continue from a checkpoint (*.ckpt.safetensors)")
    _opt(t, "log", help="metrics log (JSON lines; a PNG plot is written beside it)")
    _opt(t, "quiet", action="store_true")

    i = sub.add_parser("inference", help="classify images with a trained model")
    _opt(i, "input", required=True, help="an image file or a folder (searched recursively)")
    _opt(i, "load", required=True, help="weight file")
    _opt(i, "topk", type=int, default=5)
    _opt(i, "tencrop", action="store_true", help="average the paper's 10 crops")
    _opt(i, "batchsize", type=int, default=32)
    _opt(i, "threads", type=int)
    _opt(i, "precision", choices=PRECISIONS, default=_C.get_precision(), help=PRECISION_HELP)

    n = sub.add_parser("info", help="layer table, parameter counts and FLOPs")
    _opt(n, "variant", choices=("paper", "owt"), default="paper")
    _opt(n, "load", help="describe this weight file's model instead")
    _opt(n, "size", type=int, default=224)
    _opt(n, "classes", type=int, default=1000)

    d = sub.add_parser("demo", help="train briefly on the built-in data, then classify a few "
                                    "of its images")
    _opt(d, "epochs", type=int, default=8)
    _opt(d, "variant", choices=("paper", "owt"), default="paper")
    _opt(d, "save", default=os.path.join("runs", "demo.safetensors"))
    _opt(d, "threads", type=int)
    return p


PRECISIONS = _C.PRECISIONS
PRECISION_HELP = ("what the convolutions and linear layers multiply in: fp32 (default, "
                  "bitwise reproducible) or bf16 (AVX512_BF16; fp32 sums and storage)")


def _check_precision(name):
    try:
        _C.check_precision(name)
    except RuntimeError as e:
        raise ValueError(f"-precision {name}: {e}") from None


def _check_positive(args, *names):
    for name in names:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise ValueError(f"-{name} must be >= 1, got {v}")


def _default_data(quiet=False):
    from .synthetic import default_root, make_dataset
    if os.path.isdir("images"):
        return "images"
    root = default_root()
    if not quiet:
        print(f"{SYNTHETIC_NOTE} ({root})", flush=True)
    make_dataset(root)
    return root


def cmd_train(a):
    from .train import TrainConfig, fit
    _check_positive(a, "batchsize", "epochs", "threads", "workers", "patience", "step_size")
    _check_precision(a.precision)
    if a.size < 63:
        raise ValueError(f"-size must be >= 63 (AlexNet's smallest input), got {a.size}")
    if a.data is not None and not os.path.isdir(a.data):
        raise FileNotFoundError(f"-data {a.data}: no such folder")
    for f in ("resume", "load_pretrained"):
        path = getattr(a, f)
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"-{f} {path}: no such file")
    cfg = TrainConfig(train_dir=a.data or _default_data(a.quiet), val_dir=a.val,
                      val_fraction=a.val_fraction, save=a.save, variant=a.variant,
                      size=a.size, batch_size=a.batchsize, epochs=a.epochs, lr=a.lr,
                      momentum=a.momentum, weight_decay=a.wd, schedule=a.schedule,
                      patience=a.patience, warmup=a.warmup, step_size=a.step_size,
                      early_stop=a.early_stop,
                      init=a.init, bias_value=a.bias, seed=a.seed, threads=a.threads,
                      precision=a.precision, workers=a.workers, crop=a.crop, flip=a.flip, lighting=a.lighting,
                      tencrop=a.tencrop, cache=a.cache, load_pretrained=a.load_pretrained,
                      resume=a.resume, log=a.log, quiet=a.quiet)
    os.makedirs(os.path.dirname(os.path.abspath(cfg.save)), exist_ok=True)
    fit(cfg)


def cmd_inference(a):
    from .infer import Predictor, find_images
    _check_positive(a, "topk", "batchsize", "threads")
    _check_precision(a.precision)
    if a.threads:
        _threads.set_num_threads(a.threads)
    if not os.path.exists(a.input):
        raise FileNotFoundError(f"-input {a.input}: no such file or folder")
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    paths = find_images(a.input)
    predictor = Predictor(a.load, tencrop=a.tencrop)
    predictor.net.set_precision(a.precision)
    for path, result in predictor.predict(paths, topk=a.topk, batch_size=a.batchsize):
        if isinstance(result, Exception):
            print(f"{path}: skipped ({result})", file=sys.stderr)
            continue
        ranked = "  ".join(f"{name} {p:.3f}" for name, p in result)
        print(f"{path}: {ranked}", flush=True)
    if predictor.skipped:
        print(f"skipped {predictor.skipped} unreadable image(s)", file=sys.stderr)


def cmd_info(a):
    from .checkpoint import load
    from .model import alexnet
    meta = {}
    if a.load:
        if not os.path.isfile(a.load):
            raise FileNotFoundError(f"-load {a.load}: no such file")
        net, meta = load(a.load)
        size = int(meta.get("input_size", a.size))
    else:
        if a.size < 63:
            raise ValueError(f"-size must be >= 63, got {a.size}")
        net, size = alexnet(a.variant, num_classes=a.classes), a.size
    info = _threads.cpu_info()
    print(f"AlexNet variant '{net.variant}', {net.num_classes} classes, "
          f"{net.in_channels}x{size}x{size} input (NCHW, RGB)")
    if meta:
        print(f"weights: {a.load}" + (f", classes {', '.join(meta['classes'][:10])}"
                                       + (" ..." if len(meta["classes"]) > 10 else "")
                                       if meta.get("classes") else ""))
    print(f"{'layer':<14} {'kind':<48} {'output':>16} {'params':>12} {'MFLOPs':>9}")
    total_p = total_f = 0
    for name, desc, shape, params, mflops in net.summary(size):
        print(f"{name:<14} {desc:<48} {'x'.join(map(str, shape)):>16} {params:>12,} "
              f"{mflops:>9.1f}")
        total_p += params
        total_f += mflops
    print(f"{'total':<14} {'':<48} {'':>16} {total_p:>12,} {total_f:>9.1f}")
    print(f"forward {total_f / 1e3:.2f} GFLOP per image; engine: {info['isa']} kernels, "
          f"{info['threads']} threads, CPU {info['cpu']}")


def cmd_demo(a):
    from .infer import Predictor
    from .synthetic import default_root, make_dataset
    from .train import TrainConfig, fit
    _check_positive(a, "epochs", "threads")
    root = default_root()
    print(f"demo: built-in procedural data set in {root}", flush=True)
    make_dataset(root)
    os.makedirs(os.path.dirname(os.path.abspath(a.save)), exist_ok=True)
    # Small inputs and batches: many quick steps, so a few epochs learn the data set.
    cfg = TrainConfig(train_dir=root, save=a.save, variant=a.variant, size=64,
                      batch_size=32, epochs=a.epochs, lr=0.005, warmup=0.5,
                      schedule="constant", threads=a.threads, cache=True)
    history = fit(cfg)
    print(f"demo: final validation top-1 {history[-1]['val_top1']:.3f} "
          f"(chance {1 / len(os.listdir(os.path.join(root, 'val'))):.3f})")
    val_root = os.path.join(root, "val")
    samples = [os.path.join(val_root, c, sorted(os.listdir(os.path.join(val_root, c)))[0])
               for c in sorted(os.listdir(val_root))[:4]]
    print("demo: inference on a few validation images:")
    for path, result in Predictor(a.save).predict(samples, topk=3):
        print(f"  {os.path.relpath(path, root)}: "
              + "  ".join(f"{name} {p:.3f}" for name, p in result))


COMMANDS = {"train": cmd_train, "inference": cmd_inference, "info": cmd_info,
            "demo": cmd_demo}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("alexnet-cpu: interrupted (the last checkpoint written stays loadable)",
              file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError) as e:
        msg = str(e) if not isinstance(e, OSError) or not e.filename else \
            f"{e.filename}: {e.strerror or e}"
        print(f"alexnet-cpu: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
