"""Data-parallel training over MPI (mpi4py): one process per rank, each with its own net.

    world = init()                      # MPI if launched by mpiexec with > 1 process
    world.broadcast_parameters(net)     # every rank starts from rank 0's weights
    reducer = world.gradient_reducer(net)   # gradients in one flat buffer, reduced in buckets
    for x, y in my_shard_of_each_global_batch:
        loss, d = softmax_cross_entropy(net.forward(x), y)
        reducer.backward(d * len(y) / global_batch)   # summed over ranks = the global mean
        opt.step()

What it is not: a transport. mpi4py (and any MPI under it) moves the bytes; this module
decides what is reduced when, and ends the whole job on any rank's failure instead of
leaving the others waiting in a collective.

Without mpi4py, or when one process runs, init() returns a world of size 1 whose methods
cost nothing; mpi4py is imported only when MPI is asked for.

Overlap: MPI progresses only inside MPI calls (no background progress without a polling
thread, measured), so a communication thread does a blocking Allreduce on each bucket as
soon as backward has finished every gradient in it (mpi4py releases the GIL). The buffer is
laid out in backward order: the classifier (96% of AlexNet's weights) is reduced while the
convolutions' backward still runs. That pays when the bytes cross a network; between ranks
on one machine MPI copies and sums through shared memory on the very cores the backward
needs, and a thread waiting in a collective polls: there reducing after the backward
measured faster (2 processes x 1 thread vs 1 process x 2 threads on 2 cores, owt batch 128:
0.99x vs 0.97x, 0.76x vs 0.71x in a busier run), so overlap=None picks it only when some
ranks are on other machines.
The sums are not bitwise those of one process (another order of additions): results agree
with a single process to float32 rounding.
"""
import contextlib
import os
import queue
import sys
import threading
import time

import numpy as np

# Launchers' environment variables giving the number of processes (MPICH/Hydra and
# Intel MPI, Open MPI, MVAPICH); present before MPI is initialised.
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
DEFAULT_BUCKET_MB = 4.0     # fastest of 1-64 MB in benchmarks/bench_mpi.py (see README)
DEFAULT_TIMEOUT = 600.0     # s without progress in a collective before the job is aborted
PREFIX = "alexnet-cpu: error"

_world = None


def launched_size():
    """Number of processes the launcher started (1 when not under mpiexec)."""
    for var in SIZE_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError("MPI was asked for but mpi4py is not installed: "
                         "pip install 'alexnet-cpu[mpi]' (mpi4py and mpich)") from None
    return MPI


def init(mpi=None, timeout=DEFAULT_TIMEOUT):
    """The process's World (created once). mpi=None: MPI when the launcher started more than
    one process; True: MPI even for one process; False: never. `timeout`: seconds without
    progress in a collective after which the watchdog aborts the job (0: no watchdog)."""
    global _world
    if _world is None:
        use = launched_size() > 1 if mpi is None else bool(mpi)
        _world = World(_import_mpi() if use else None, timeout)
    return _world


@contextlib.contextmanager
def abort_on_error():
    """World.abort_on_error for the world init() makes, even when init() runs inside."""
    try:
        yield
    except BaseException as e:
        if _world is None or not _world.must_abort(e):
            raise
        _world.abort(_one_line(e))


def shard_slice(n, rank, size):
    """Rows of a batch of n that rank takes: contiguous, sizes differing by at most one,
    the first n % size ranks one larger (each row exactly once over the ranks)."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


def param_checksums(net):
    """One exact integer per parameter (sum of its float32 words): any bit that differs
    between ranks shows."""
    return [int(p.view(np.uint32).sum(dtype=np.uint64)) for _, p in net.named_params()]


def set_dropout_rows(net, step, row0):
    """Key the dropout masks of the next forward by (step, global row of the first sample),
    so a sample's mask does not depend on which rank or micro-batch carries it."""
    for _, layer in net.layers:
        if hasattr(layer, "row_offset"):
            layer.calls, layer.row_offset = step, row0


class World:
    """rank, size and the collectives a trainer needs; a size-1 world when comm is None."""

    def __init__(self, MPI=None, timeout=DEFAULT_TIMEOUT):
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if MPI is not None else None
        self.rank = self.comm.Get_rank() if self.comm else 0
        self.size = self.comm.Get_size() if self.comm else 1
        self.local_size = 1
        self.watchdog = None
        if self.comm is not None:
            self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
            if timeout:
                self.watchdog = Watchdog(self, timeout)
            self._install_excepthook()

    @property
    def is_root(self):
        return self.rank == 0

    # -- failure ------------------------------------------------------------------------
    def abort(self, message, code=1):
        """One line naming the rank on stderr, then end every rank of the job."""
        print(f"{PREFIX}: rank {self.rank}/{self.size}: {message}", file=sys.stderr,
              flush=True)
        if self.comm is not None:
            # An immediate Abort ended mpiexec before it had forwarded this line in 1 of
            # 12 runs; none of 20 with this pause.
            time.sleep(0.5)
            self.comm.Abort(code)
        os._exit(code)   # Abort may return before the launcher ends us: run no handlers

    def must_abort(self, e):
        """An exception ends the whole job when ranks would otherwise wait for this one."""
        return self.size > 1 and not (isinstance(e, SystemExit) and not e.code)

    @contextlib.contextmanager
    def abort_on_error(self):
        """Any exception inside (KeyboardInterrupt too) aborts the whole job when
        size > 1, so no rank is left waiting in a collective; size 1 re-raises."""
        try:
            yield self
        except BaseException as e:
            if not self.must_abort(e):
                raise
            self.abort(_one_line(e))

    def _install_excepthook(self):
        previous = sys.excepthook

        def hook(kind, value, tb):
            previous(kind, value, tb)
            if self.must_abort(value):
                self.abort(_one_line(value))
        sys.excepthook = hook

    @contextlib.contextmanager
    def _collective(self, what):
        if self.watchdog is None:
            yield
            return
        self.watchdog.enter(what)
        try:
            yield
        finally:
            self.watchdog.leave()

    # -- collectives ------------------------------------------------------------------
    def barrier(self):
        if self.comm is not None:
            with self._collective("barrier"):
                self.comm.Barrier()

    def allreduce(self, values):
        """Element-wise sum over ranks of a float64 vector (metrics, counts)."""
        a = np.array(values, np.float64).reshape(-1)
        if self.comm is not None:
            with self._collective("allreduce"):
                self.comm.Allreduce(self.MPI.IN_PLACE, a)
        return a

    def allgather(self, obj):
        """[obj of rank 0, obj of rank 1, ...] on every rank (small Python objects)."""
        if self.comm is None:
            return [obj]
        with self._collective("allgather"):
            return self.comm.allgather(obj)

    def bcast(self, make=None):
        """make() evaluated on rank 0 only, its result sent to every rank."""
        if self.comm is None:
            return make()
        value = make() if self.is_root else None
        with self._collective("bcast"):
            return self.comm.bcast(value, root=0)

    def broadcast_arrays(self, arrays):
        """Rank 0's values into the same arrays on every rank (in place)."""
        if self.comm is None:
            return
        with self._collective("broadcast"):
            for a in arrays:
                self.comm.Bcast(a, root=0)

    def broadcast_parameters(self, net, opt=None):
        """Every rank gets rank 0's parameters (and momentum buffers, if an SGD is given)."""
        self.broadcast_arrays([net.flat] + ([opt.velocity_flat] if opt is not None else []))

    def check_parameters(self, net, step):
        """Raise if any rank's parameters differ bitwise from rank 0's."""
        if self.comm is None:
            return
        sums = self.allgather(param_checksums(net))
        bad = [r for r, s in enumerate(sums) if s != sums[0]]
        if bad:
            raise RuntimeError(f"parameters of rank(s) {bad} differ from rank 0's at step "
                               f"{step}: the ranks drifted apart")

    def reduce_eval(self, m):
        """Per-rank evaluate() results -> the evaluation of all ranks' samples together."""
        if self.comm is None:
            return m
        n = m["n"]
        tot = self.allreduce([n, m["loss"] * n if n else 0.0, round(m["top1"] * n) if n else 0,
                              round(m["topk"] * n) if n else 0])
        n = int(tot[0])
        if n == 0:
            return m
        return {"loss": tot[1] / n, "top1": int(tot[2]) / n, "topk": int(tot[3]) / n,
                "k": m["k"], "n": n}

    def gradient_reducer(self, net, bucket_mb=DEFAULT_BUCKET_MB, overlap=None):
        """overlap=None: overlapped when some ranks run on other machines (see above)."""
        if overlap is None:
            overlap = self.local_size < self.size
        return GradientReducer(self, net, bucket_mb, overlap)

    def pids(self):
        """'0:pid@host 1:pid@host ...': maps a launcher's 'PID ... EXIT CODE' line to a rank."""
        me = f"{os.getpid()}@{os.uname().nodename}"
        return " ".join(f"{r}:{p}" for r, p in enumerate(self.allgather(me)))


def _one_line(e):
    text = str(e).strip().splitlines()
    text = text[0] if text else ""
    known = isinstance(e, (ValueError, OSError, FloatingPointError, RuntimeError))
    if isinstance(e, OSError) and e.filename:
        text = f"{e.filename}: {e.strerror or text}"
    return text if known and text else f"{type(e).__name__}: {text}".rstrip(": ")


class Watchdog:
    """Aborts the job when a collective has made no progress for `timeout` seconds: a rank
    that hangs (or dies under a launcher that does not clean up) would otherwise leave the
    others waiting forever."""

    def __init__(self, world, timeout):
        self.world, self.timeout = world, float(timeout)
        self.lock = threading.Lock()
        self.busy, self.last, self.what = 0, time.monotonic(), None
        threading.Thread(target=self._run, name="alexnet-cpu-watchdog", daemon=True).start()

    def enter(self, what):
        with self.lock:
            self.busy += 1
            self.last, self.what = time.monotonic(), what

    def leave(self):
        with self.lock:
            self.busy -= 1
            self.last = time.monotonic()

    def _run(self):
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            with self.lock:
                stuck = self.busy and time.monotonic() - self.last > self.timeout
            if stuck:
                self.world.abort(f"no progress in {self.what} for {self.timeout:g} s: another "
                                 f"rank is stuck or has died")


class GradientReducer:
    """Sums the net's gradient arena (Net.grad_flat: the last layer's gradients first) over
    the ranks in buckets of `bucket_mb`, each as soon as backward has completed it.

    backward(d, reduce=True) runs net.backward and returns once the sums are in place;
    reduce=False only accumulates (gradient accumulation: reduce on the last micro-batch).
    overlap=False reduces every bucket after the backward, on the calling thread.
    Timing of the last backward: .ready_s[k] (s from its start until layer k's gradients
    were final), .backward_s, .reduce_s (time in Allreduce), .wait_s (the wait for the
    reduce after the backward: the part of reduce_s the overlap did not hide).
    """

    def __init__(self, world, net, bucket_mb=DEFAULT_BUCKET_MB, overlap=True):
        if bucket_mb <= 0:
            raise ValueError(f"bucket_mb must be > 0, got {bucket_mb}")
        self.world, self.net, self.overlap = world, net, bool(overlap)
        # The net's gradient arena is in backward order: buckets complete front to back.
        self.flat, self.layer_end = net.grad_flat(), net.layer_end
        total = len(self.flat)
        step = max(1, int(bucket_mb * 2 ** 20 / 4))
        self.buckets = [(a, min(a + step, total)) for a in range(0, total, step)]
        self.reduce_s = self.wait_s = self.backward_s = 0.0
        self.ready_s = {}
        self._queue = self._thread = self._error = None
        if world.comm is not None:
            # Its own communicator: the thread's collectives never interleave with the
            # main thread's on COMM_WORLD.
            self.comm = world.comm.Dup()
            if self.overlap:
                self._queue, self._done = queue.Queue(), threading.Semaphore(0)
                self._thread = threading.Thread(target=self._serve, daemon=True,
                                                name="alexnet-cpu-allreduce")
                self._thread.start()

    def backward(self, dlogits, reduce=True):
        self._active = reduce and self.world.comm is not None
        self._next, self._error, self.reduce_s, self.wait_s = 0, None, 0.0, 0.0
        self._t0 = time.perf_counter()
        self.net.backward(dlogits, grad_ready=self._grad_ready)
        t = time.perf_counter()
        self.backward_s = t - self._t0
        if not self._active:
            return
        if self.overlap:
            self._submit(len(self.flat))
            for _ in range(len(self.buckets)):
                self._done.acquire()
            if self._error is not None:
                raise self._error
        else:
            for a, b in self.buckets:
                self._allreduce(a, b)
        self.wait_s = time.perf_counter() - t

    def _grad_ready(self, k):
        self.ready_s[k] = time.perf_counter() - self._t0
        end = self.layer_end.get(k)
        if end is not None and self._active and self.overlap:
            self._submit(end)

    def _submit(self, ready):
        while self._next < len(self.buckets) and self.buckets[self._next][1] <= ready:
            self._queue.put(self.buckets[self._next])
            self._next += 1

    def _allreduce(self, a, b):
        t = time.perf_counter()
        with self.world._collective("the gradient allreduce"):
            self.comm.Allreduce(self.world.MPI.IN_PLACE, self.flat[a:b])
        self.reduce_s += time.perf_counter() - t

    def _serve(self):
        while True:
            a, b = self._queue.get()
            try:
                self._allreduce(a, b)
            except BaseException as e:   # handed to the main thread, which raises it
                self._error = e
            self._done.release()
