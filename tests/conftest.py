"""Shared fixtures: every kernel test runs on each ISA path this CPU has and on 1 and 2 threads."""
import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import _C

# every path in the parameter list: one this CPU lacks shows as skipped, with the reason
ISA_PARAMS = [pytest.param(n, marks=pytest.mark.skipif(
    not _C.isa_supported(n), reason=f"this CPU lacks the {n} instructions" if _C.isa_built(n)
    else f"{n} is another architecture's path"))
    for n in _C.ISA_NAMES]


@pytest.fixture(params=ISA_PARAMS)
def isa(request):
    """Run the test with the given SIMD path selected, then restore the default."""
    old = _C.get_isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(old)


@pytest.fixture(params=[1, 2])
def nthreads(request):
    old = ac.get_num_threads()
    ac.set_num_threads(request.param)
    yield request.param
    ac.set_num_threads(old)


@pytest.fixture
def conv_winograd():
    """A setter of the Winograd choice ("auto", "off", "on") for the test; restored after."""
    old = _C.get_conv_winograd()
    yield _C.set_conv_winograd
    _C.set_conv_winograd(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
