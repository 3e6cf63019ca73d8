"""The `alexnet-cpu` command: train, inference, info, demo, explain, filters, evaluate,
export, import.

Options take one dash or two (-batchsize or --batchsize). Errors are one line on stderr
and a non-zero exit.
"""
import argparse
import json
import os
import sys
import typing

from . import _C, _threads, distributed

# `demo`: many quick steps at 64 px, so a few minutes learn the built-in data set; no
# dropout (2,000 images, 13 epochs: it only slowed learning) and lr / 10 for the last 5
# epochs (+8 points of top-1 in our runs).
DEMO = {"variant": "paper", "epochs": 13, "size": 64, "batch_size": 32, "lr": 0.01,
        "warmup": 0.5, "schedule": "step", "step_size": 8, "dropout": 0.0}

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


def _config_flags(parser, config):
    """One flag per option field of a config dataclass (see train.option): its name, type,
    default, choices and help come from the field, so the parser cannot drift from it."""
    hints = typing.get_type_hints(config)
    for f, flag in config.options():
        kind = hints[f.name]
        kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        kw = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if kind is bool and f.default is False:
            kw["action"] = "store_true"
        elif kind is bool:
            kw.update(type=_bool, metavar="on|off")
        else:
            kw.update(type=kind, metavar=flag.upper())
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
        if f.default is not None and "action" not in kw and "default" not in kw["help"]:
            kw["help"] += f" (default {f.default})"
        _opt(parser, flag, **kw)


def build_parser():
    from .model import MIN_INPUT, VARIANTS
    from .train import TrainConfig
    p = _Parser(prog="alexnet-cpu", description="Train and run AlexNet on the CPU.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on an image folder (or the built-in data)")
    _config_flags(t, TrainConfig)

    i = sub.add_parser("inference", help="classify images with a trained model")
    _opt(i, "input", required=True, help="an image file or a folder (searched recursively)")
    _opt(i, "load", required=True, help="weight file")
    _opt(i, "topk", type=int, default=5, help="classes shown per image (at most the "
                                              "model's number of classes)")
    _opt(i, "tencrop", action="store_true", help="average the paper's 10 crops")
    _opt(i, "batchsize", type=int, help="images per forward (default: 128 network inputs, "
                                        "so 128 images, 12 with -tencrop)")
    _opt(i, "threads", type=int, help="compute threads (default: all cores)")
    _opt(i, "workers", type=int, help="image decoding threads (default: the cores -threads "
                                      "leaves free, else one per core; 0: decode between "
                                      "the forwards)")
    _opt(i, "quiet", action="store_true", help="no progress line for a folder")
    _opt(i, "precision", choices=_C.PRECISIONS, default=_C.get_precision(), help=PRECISION_HELP)
    _opt(i, "json", action="store_true", help="one JSON object per image: file, classes, "
                                              "probabilities")

    n = sub.add_parser("info", help="layer table, parameter counts and FLOPs")
    _opt(n, "variant", choices=VARIANTS, default=TrainConfig.variant)
    _opt(n, "load", help="describe this weight file's model instead")
    _opt(n, "size", type=int, default=TrainConfig.size, help=f"input size (>= {MIN_INPUT})")
    _opt(n, "classes", type=int, default=1000)

    d = sub.add_parser("demo", help="train briefly on the built-in data, then classify a few "
                                    "of its images")
    _opt(d, "epochs", type=int, default=DEMO["epochs"])
    _opt(d, "variant", choices=VARIANTS, default=DEMO["variant"])
    _opt(d, "save", default=os.path.join("runs", "demo.safetensors"))
    _opt(d, "threads", type=int)
    _picture_parsers(sub)

    e = sub.add_parser("export", help="write a model as ONNX (for ONNX Runtime, OpenVINO, "
                                      "TensorRT, ...)")
    _opt(e, "load", required=True, help="weight file (or an .onnx file)")
    e.add_argument("-o", "-output", "--output", dest="output", required=True,
                   help="the .onnx file to write")
    _opt(e, "size", type=int, help="input side of the graph (default: the size the model "
                                   "was trained at, else 224)")
    _opt(e, "opset", type=int, default=17, help="ONNX opset, 13 or later (default 17)")

    m = sub.add_parser("import", help="read an AlexNet ONNX graph into a weight file")
    m.add_argument("input", help="the .onnx file (our exports, torchvision's AlexNet "
                                 "exported by torch.onnx.export, Caffe's bvlc_alexnet)")
    _opt(m, "save", required=True, help="weight file to write")
    _opt(m, "classes", help="text file of class names, one a line, in output order")
    _opt(m, "mean", help="per-channel mean R,G,B of 0-255 pixels the model expects")
    _opt(m, "std", help="per-channel standard deviation R,G,B (with -mean)")
    _opt(m, "bgr", action="store_true", help="the graph takes BGR input (Caffe models): "
                                             "conv1's channels are reversed to take RGB")
    _quantize_parser(sub)
    return p


def _quantize_parser(sub):
    from .quantize import CALIBRATIONS
    q = sub.add_parser("quantize", help="post-training int8 quantization (docs/INT8.md)")
    _opt(q, "load", required=True, help="fp32 weight file")
    _opt(q, "data", required=True, help="image folder to calibrate the activation ranges "
                                        "on (any images; labels are not used)")
    _opt(q, "images", type=int, default=300, help="calibration images, spread over the "
                                                  "folder (default 300)")
    _opt(q, "calibration", choices=CALIBRATIONS, default="max",
         help="range of each activation: its max, or its 99.99th percentile (default max)")
    _opt(q, "save", required=True, help="int8 weight file to write")
    _opt(q, "threads", type=int, help="compute threads (default: all cores)")


def _picture_parsers(sub):
    """explain, filters, evaluate: what the network learned, as pictures."""
    e = sub.add_parser("explain", help="Grad-CAM: where in each image the evidence for a "
                                       "class lies (a PNG per image)")
    _opt(e, "input", required=True, help="an image file or a folder (searched recursively)")
    _opt(e, "load", required=True, help="weight file")
    _opt(e, "class", dest="cls", metavar="NAME", help="class to explain (default: each image's top-1)")
    _opt(e, "layer", default="conv5", help="conv1..conv5 or a layer name (default conv5)")
    _opt(e, "o", dest="out", default="gradcam", metavar="DIR", help="output folder (default gradcam)")
    _opt(e, "batchsize", type=int, default=16)
    _opt(e, "threads", type=int)
    _opt(e, "precision", choices=_C.PRECISIONS, default=_C.get_precision(), help=PRECISION_HELP)

    f = sub.add_parser("filters", help="the conv1 kernels as a grid of colour patches (PNG)")
    _opt(f, "load", required=True, help="weight file")
    _opt(f, "o", dest="out", default="conv1.png", metavar="PNG", help="output PNG (default conv1.png)")

    v = sub.add_parser("evaluate", help="accuracy per class and the confusion matrix of a "
                                        "model on an image folder (printed and a PNG)")
    _opt(v, "load", required=True, help="weight file")
    _opt(v, "data", required=True, metavar="DIR", help="folder with one sub-folder per class (or a root "
                                        "holding val/)")
    _opt(v, "o", dest="out", metavar="PNG", help="output PNG (default: beside the weights, "
                                  "NAME.confusion.png)")
    _opt(v, "tencrop", action="store_true", help="average the paper's 10 crops")
    _opt(v, "batchsize", type=int, default=32)
    _opt(v, "threads", type=int)
    _opt(v, "precision", choices=_C.PRECISIONS, default=_C.get_precision(), help=PRECISION_HELP)


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
    cfg = TrainConfig(**{f.name: getattr(a, f.name) for f, _ in TrainConfig.options()})
    # The world first: a bad flag on one rank must then end the job, not leave it waiting.
    world = distributed.init(cfg.mpi, cfg.timeout)
    cfg.check()
    if cfg.train_dir is not None and not os.path.isdir(cfg.train_dir):
        raise FileNotFoundError(f"-data {cfg.train_dir}: no such folder")
    _check_precision(cfg.precision)
    for f in ("resume", "load_pretrained"):
        path = getattr(cfg, f)
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"-{f} {path}: no such file")
    cfg.train_dir = cfg.train_dir or world.bcast(lambda: _default_data(cfg.quiet))
    os.makedirs(os.path.dirname(os.path.abspath(cfg.save)), exist_ok=True)
    fit(cfg)


def cmd_inference(a):
    from .infer import Predictor, find_images
    from .progress import StatusLine
    _check_positive(a, "topk", "batchsize", "threads")
    if a.workers is not None and a.workers < 0:
        raise ValueError(f"-workers must be >= 0, got {a.workers}")
    _check_precision(a.precision)
    if a.threads:
        _threads.set_num_threads(a.threads)
    if not os.path.exists(a.input):
        raise FileNotFoundError(f"-input {a.input}: no such file or folder")
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    paths = find_images(a.input)
    one_file = os.path.isfile(a.input)
    predictor = Predictor(a.load, tencrop=a.tencrop)
    predictor.net.set_precision(a.precision)
    status = StatusLine(len(paths), enabled=not (a.quiet or one_file))   # stderr
    done = 0
    results = predictor.predict(paths, topk=a.topk, batch_size=a.batchsize, workers=a.workers)
    for seen, (path, result) in enumerate(results, 1):
        if isinstance(result, Exception):
            if one_file:    # the one image asked for: an error, not a skip
                raise ValueError(str(result))
            status.message(f"{path}: skipped ({result})")
        else:
            done += 1
            if a.json:
                print(json.dumps({"file": path, "classes": [c for c, _ in result],
                                  "probabilities": [p for _, p in result]}), flush=True)
            else:
                ranked = "  ".join(f"{name} {p:.3f}" for name, p in result)
                print(f"{path}: {ranked}", flush=True)
        status.update(seen)
    status.close(f"classified {done} of {len(paths)} images in {status.elapsed():.1f} s "
                 f"({done / max(status.elapsed(), 1e-9):.1f} img/s)")
    if predictor.skipped:
        print(f"skipped {predictor.skipped} unreadable image(s)", file=sys.stderr)
    if not done:
        raise ValueError(f"{a.input}: none of the {len(paths)} images could be read")


def cmd_info(a):
    from .checkpoint import load
    from .model import MIN_INPUT, alexnet
    meta = {}
    if a.load:
        if not os.path.isfile(a.load):
            raise FileNotFoundError(f"-load {a.load}: no such file")
        net, meta = load(a.load)
        size = int(meta.get("input_size", a.size))
    else:
        if a.size < MIN_INPUT:
            raise ValueError(f"-size must be >= {MIN_INPUT}, got {a.size}")
        net, size = alexnet(a.variant, num_classes=a.classes, init=None), a.size   # shapes only
    info = _threads.cpu_info()
    print(f"AlexNet variant '{net.variant}', {net.num_classes} classes, "
          f"{net.in_channels}x{size}x{size} input (NCHW, RGB)")
    if meta.get("precision") == "int8":
        print(f"precision: int8 (calibrated on {meta.get('calibration', {}).get('images')} "
              f"images), running on the {_C.int8_path(net.ctx)} int8 path")
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
    cfg = TrainConfig(**{**DEMO, "variant": a.variant, "epochs": a.epochs}, train_dir=root,
                      save=a.save, threads=a.threads, cache=True)
    history = fit(cfg)
    print(f"demo: final validation top-1 {history[-1]['val_top1']:.3f}, best "
          f"{max(h['val_top1'] for h in history):.3f} "
          f"(chance {1 / len(os.listdir(os.path.join(root, 'val'))):.3f})")
    val_root = os.path.join(root, "val")
    samples = [os.path.join(val_root, c, sorted(os.listdir(os.path.join(val_root, c)))[0])
               for c in sorted(os.listdir(val_root))[:4]]
    print("demo: inference on a few validation images:")
    for path, result in Predictor(a.save).predict(samples, topk=3):
        print(f"  {os.path.relpath(path, root)}: "
              + "  ".join(f"{name} {p:.3f}" for name, p in result))
    print(f"demo: what it learned: alexnet-cpu explain -input {samples[0]} -load {a.save}; "
          f"alexnet-cpu filters -load {a.save}")


def _model_and_inputs(a):
    """Checks shared by the commands that read a weight file: (Predictor, its settings)."""
    from .infer import Predictor
    _check_positive(a, "batchsize", "threads")
    _check_precision(a.precision)
    if a.threads:
        _threads.set_num_threads(a.threads)
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    predictor = Predictor(a.load, tencrop=getattr(a, "tencrop", False))
    predictor.net.set_precision(a.precision)
    return predictor


def _needs_fp32(net, command):
    if net.precision == "int8":
        raise ValueError(f"{command} needs the fp32 model (gradients, fp32 weights); this one "
                         f"is int8")


def cmd_explain(a):
    from .explain import class_index, explain_files, resolve_layer
    from .infer import find_images
    if not os.path.exists(a.input):
        raise FileNotFoundError(f"-input {a.input}: no such file or folder")
    predictor = _model_and_inputs(a)
    _needs_fp32(predictor.net, "explain")
    resolve_layer(predictor.net, a.layer)
    target = None if a.cls is None else class_index(predictor.classes, a.cls)
    paths = find_images(a.input)
    root = a.input if os.path.isdir(a.input) else None
    done = skipped = 0
    for path, *result in explain_files(predictor, paths, a.out, a.layer, target, root,
                                       a.batchsize):
        if isinstance(result[0], Exception):
            if root is None:        # the one image asked for: an error, not a skip
                raise ValueError(str(result[0]))
            print(f"{path}: skipped ({result[0]})", file=sys.stderr)
            skipped += 1
            continue
        done += 1
        file, cls, p = result
        print(f"{path}: {cls} {p:.3f} -> {file}", flush=True)
    if skipped:
        print(f"skipped {skipped} unreadable image(s)", file=sys.stderr)
    if not done:
        raise ValueError(f"{a.input}: none of the {len(paths)} images could be read")


def cmd_filters(a):
    from .checkpoint import load
    from .filters import draw_filters
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    net, _ = load(a.load)
    _needs_fp32(net, "filters")
    draw_filters(net, a.out)
    print(f"conv1 kernels: {a.out}")


def cmd_evaluate(a):
    from .confusion import class_report
    from .data import DataLoader, ImageFolder
    if not os.path.isdir(a.data):
        raise FileNotFoundError(f"-data {a.data}: no such folder")
    predictor = _model_and_inputs(a)
    root = os.path.join(a.data, "val") if os.path.isdir(os.path.join(a.data, "val")) else a.data
    data = ImageFolder(root, classes=predictor.classes)
    loader = DataLoader(data, a.batchsize, predictor.size, predictor.mean, predictor.std,
                        train=False, shuffle=False, ten_crop=a.tencrop)
    out = a.out or os.path.splitext(a.load)[0] + ".confusion.png"
    print(f"evaluating {a.load} on {root}: {len(data)} images, {len(data.classes)} classes",
          flush=True)
    counts, loss = class_report(predictor.net, loader, predictor.classes, out,
                                tencrop=a.tencrop,
                                title=f"{os.path.basename(a.load)} on "
                                      f"{os.sep.join(os.path.normpath(root).split(os.sep)[-2:])}")
    if loader.skipped:
        print(f"skipped {len(loader.skipped)} unreadable image(s)", file=sys.stderr)
    n = int(counts.sum())
    if not n:
        raise ValueError(f"{root}: none of the {len(data)} images could be read")
    print(f"loss {loss / n:.4f}  top-1 {counts.trace() / n:.3f}")


def cmd_export(a):
    from .checkpoint import load
    from .onnx_io import export_onnx
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    net, meta = load(a.load)
    size = a.size or int(meta.get("input_size", 224))
    pre = meta.get("preprocess") or {}
    export_onnx(net, a.output, input_size=size, classes=meta.get("classes"),
                mean=pre.get("mean"), std=pre.get("std"), opset=a.opset)
    print(f"{a.load} -> {a.output}: {net.variant} AlexNet, {net.num_classes} classes, "
          f"input (batch, {net.in_channels}, {size}, {size}), opset {a.opset}")


def _channels(flag, text):
    try:
        v = [float(t) for t in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 3:
        raise ValueError(f"-{flag}: expected three numbers R,G,B, got {text!r}")
    return v


def cmd_import(a):
    from .checkpoint import check_metadata, save
    from .infer import IMAGENET_MEAN, IMAGENET_STD
    from .onnx_io import import_onnx
    if (a.mean is None) != (a.std is None):
        raise ValueError("-mean and -std go together")
    net, meta = import_onnx(a.input)
    if a.bgr:
        if net.in_channels != 3:
            raise ValueError(f"-bgr: the model takes {net.in_channels} channels, not 3")
        net.invalidate()
        w = net.layers[0][1].params["weight"]
        w[...] = w[:, ::-1].copy()
    if a.classes:
        with open(a.classes, encoding="utf-8") as f:
            meta["classes"] = [line.strip() for line in f if line.strip()]
    if a.mean is not None:
        meta["preprocess"] = {"mean": _channels("mean", a.mean), "std": _channels("std", a.std)}
    elif "preprocess" not in meta:
        meta["preprocess"] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        print(f"{a.input}: no preprocessing in the file: torchvision's ImageNet mean and std "
              f"assumed (-mean, -std to set them)")
    check_metadata(a.classes or a.input, meta, {n: p.shape for n, p in net.named_params()})
    os.makedirs(os.path.dirname(os.path.abspath(a.save)), exist_ok=True)
    g = net.geometry
    lrn = g["lrn"] if net.variant == "paper" else None
    save(a.save, net, **{k: v for k, v in meta.items() if k != "kind"})
    print(f"{a.input} -> {a.save}: {net.variant} AlexNet, {net.num_classes} classes, "
          f"{meta['input_size']} px, conv1 pad {g['conv1_pad']}, "
          f"{'ceil' if g['pool_ceil'] else 'floor'}-mode pools"
          + (f", LRN k={lrn['k']:g} alpha={lrn['alpha']:g} (not divided by size) "
             f"beta={lrn['beta']:g}" if lrn else ""))


def cmd_quantize(a):
    from .quantize import quantize
    _check_positive(a, "images", "threads")
    if a.threads:
        _threads.set_num_threads(a.threads)
    if not os.path.isfile(a.load):
        raise FileNotFoundError(f"-load {a.load}: no such file")
    if not os.path.isdir(a.data):
        raise FileNotFoundError(f"-data {a.data}: no such folder")
    os.makedirs(os.path.dirname(os.path.abspath(a.save)), exist_ok=True)
    meta = quantize(a.load, a.data, a.save, a.images, a.calibration)
    print(f"quantize: wrote {a.save} (int8 weights per output channel, activations "
          f"calibrated on {meta['calibration']['images']} images, {a.calibration})")


COMMANDS = {"train": cmd_train, "inference": cmd_inference, "info": cmd_info,
            "demo": cmd_demo, "explain": cmd_explain, "filters": cmd_filters,
            "evaluate": cmd_evaluate, "export": cmd_export, "import": cmd_import,
            "quantize": cmd_quantize}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        with distributed.abort_on_error():   # under MPI: one line naming the rank, Abort
            COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("alexnet-cpu: interrupted (the last checkpoint written stays loadable)",
              file=sys.stderr)
        return 130
    except (ValueError, OSError, FloatingPointError, ImportError) as e:
        msg = str(e) if not isinstance(e, OSError) or not e.filename else \
            f"{e.filename}: {e.strerror or e}"
        print(f"alexnet-cpu: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
