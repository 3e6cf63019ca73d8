"""Helper for tests/test_distributed.py, run under mpiexec: rank 1 fails in the way named by
argv[1] while rank 0 waits in a collective.

raise: an exception inside World.abort_on_error; hook: an uncaught exception (the
excepthook aborts); kill: SIGKILL; hang: stops responding (the watchdog aborts); drift: its weights differ."""
import os
import signal
import sys
import time

from alexnet_cpu import distributed

world = distributed.init(mpi=True, timeout=3.0)
print(f"ranks {world.pids()}", flush=True)
how = sys.argv[1]
if how == "drift":
    from tiny import tiny_alexnet
    net = tiny_alexnet(2)
    if world.rank == 1:
        net.named_params()[3][1][0] += 1e-7     # one float of features.3.bias
    with world.abort_on_error():
        world.check_parameters(net, step=7)
if world.rank == 1:
    time.sleep(0.5)
    if how == "raise":
        with world.abort_on_error():
            raise ValueError("bad file images/x.jpg")
    if how == "hook":
        raise RuntimeError("uncaught on purpose")
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "hang":
        time.sleep(120)
world.allreduce([1.0])
print("not aborted", flush=True)
