import subprocess
import sys

import pytest
import threadpoolctl

import alexnet_cpu as ac
from alexnet_cpu import _C


def test_cpu_info_reports_path_and_threads():
    info = ac.cpu_info()
    assert info["isa"] in _C.ISA_NAMES
    assert info["isa"] in info["isa_supported"]
    assert info["threads"] == ac.get_num_threads() >= 1


def test_set_num_threads_and_threadpoolctl():
    old = ac.get_num_threads()
    try:
        ac.set_num_threads(1)
        assert ac.get_num_threads() == 1
        ac.set_num_threads(2)
        if _C.have_openmp():
            assert ac.get_num_threads() == 2
            with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
                assert ac.get_num_threads() == 1
    finally:
        ac.set_num_threads(old)
    with pytest.raises(ValueError):
        ac.set_num_threads(0)


def test_isa_env_forces_path_and_refuses_unknown():
    code = "import alexnet_cpu as ac; print(ac.cpu_info()['isa'])"
    out = subprocess.run([sys.executable, "-c", code], env={"ALEXNET_CPU_ISA": "generic"},
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "generic", out.stderr
    bad = subprocess.run([sys.executable, "-c", code], env={"ALEXNET_CPU_ISA": "sse9"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown ISA" in bad.stderr
