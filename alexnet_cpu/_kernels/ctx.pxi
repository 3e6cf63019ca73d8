# The context of a kernel call (csrc/include/ac_ctx.h): the SIMD path, what the GEMMs multiply
# in and the Winograd choice. Every binding with variants takes `ctx` (a Context, or None for
# the defaults) and hands it to C, which reads no setting of its own: calls with different
# contexts may run at once in different Python threads.
import os

cdef extern from "ac_ctx.h":
    ctypedef struct ac_ctx:
        int isa, precision, winograd, amx

cdef extern from "ac_cpu.h":
    int ac_isa_supported(int path) nogil
    int ac_isa_built(int path) nogil
    int ac_isa_best() nogil

cdef extern from "ac_bf16.h":
    int ac_bf16_supported() nogil

cdef extern from "ac_int8.h":
    int ac_i8_amx_supported() nogil

ISA_NAMES = ("generic", "avx2", "avx512", "neon")   # x86-64's, then aarch64's
PRECISIONS = ("fp32", "bf16")
WINOGRAD_MODES = ("auto", "off", "on")

cdef bint _bf16_hidden = False   # tests and ALEXNET_CPU_BF16=0 play a CPU without AVX512_BF16


def isa_supported(str name):
    return bool(ac_isa_supported(ISA_NAMES.index(name)))


def isa_built(str name):
    """True if this build has the path's code: the paths of its architecture."""
    return bool(ac_isa_built(ISA_NAMES.index(name)))


def bf16_supported():
    """True if this CPU has AVX512_BF16 (vdpbf16ps) beside the AVX-512 path."""
    return bool(ac_bf16_supported()) and not _bf16_hidden


cdef int _index(str what, tuple names, object name) except -1:
    if name not in names:
        raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(names)}")
    return names.index(name)


cdef class Context:
    """What a kernel call runs: the SIMD path `isa`, what the GEMMs multiply in
    (`precision`: "fp32", or "bf16" operands with fp32 sums) and whether 3x3 stride-1 pad-1
    convolutions take Winograd (`winograd`: "auto", "off", "on"), and whether the int8 GEMMs
    of the AVX-512 path run on AMX tiles (`amx`; default: where the CPU has them). Immutable.
    A field left None takes its default (set_isa, set_precision, set_conv_winograd) at
    construction. Raises ValueError for an unknown name, RuntimeError for a path this CPU
    lacks."""
    cdef ac_ctx c

    def __init__(self, isa=None, precision=None, winograd=None, amx=None):
        cdef int i = _index("ISA", ISA_NAMES, _default_ctx.isa if isa is None else isa)
        cdef int p = _index("precision", PRECISIONS,
                            _default_ctx.precision if precision is None else precision)
        cdef int w = _index("Winograd mode", WINOGRAD_MODES,
                            _default_ctx.winograd if winograd is None else winograd)
        if not ac_isa_supported(i):
            raise RuntimeError(f"this CPU does not support the {ISA_NAMES[i]} path (supported: "
                               f"{', '.join(n for n in ISA_NAMES if isa_supported(n))})")
        # bf16 has a SIMD kernel on the AVX-512 path with AVX512_BF16, and the portable
        # reference kernel on the generic path of any CPU.
        if p == 1 and i != 0 and not (i == 2 and bf16_supported()):
            hidden = " (hidden by ALEXNET_CPU_BF16=0)" if _bf16_hidden else ""
            raise RuntimeError(f"bf16 precision needs AVX512_BF16, which this CPU lacks{hidden};"
                               f" the {ISA_NAMES[i]} path has no bf16 kernel (the portable "
                               f"reference runs with ALEXNET_CPU_ISA=generic)")
        amx = _default_ctx.amx if amx is None else bool(amx)
        if amx and not ac_i8_amx_supported():
            raise RuntimeError("this CPU (or its OS) offers no AMX-INT8 tiles")
        self.c.isa, self.c.precision, self.c.winograd, self.c.amx = i, p, w, amx

    @property
    def isa(self):
        return ISA_NAMES[self.c.isa]

    @property
    def precision(self):
        return PRECISIONS[self.c.precision]

    @property
    def winograd(self):
        return WINOGRAD_MODES[self.c.winograd]

    @property
    def amx(self):
        return bool(self.c.amx)

    def replace(self, **fields):
        """A Context with these fields changed (isa=, precision=, winograd=, amx=)."""
        f = {"isa": self.isa, "precision": self.precision, "winograd": self.winograd,
             "amx": self.amx}
        f.update(fields)
        return Context(**f)

    def _key(self):
        return (self.c.isa, self.c.precision, self.c.winograd, self.c.amx)

    def __eq__(self, other):
        return isinstance(other, Context) and self._key() == (<Context>other)._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return (f"Context(isa={self.isa!r}, precision={self.precision!r}, "
                f"winograd={self.winograd!r}, amx={self.amx!r})")

    def __reduce__(self):
        return (Context, (self.isa, self.precision, self.winograd, self.amx))


# The defaults: the context of calls without one, and what new nets start from.
cdef Context _default_ctx = Context(ISA_NAMES[ac_isa_best()], "fp32", "auto",
                                    bool(ac_i8_amx_supported()))


def default_context():
    """The Context that calls without one use, and that new nets start from."""
    return _default_ctx


cdef Context _resolve(str fn, object ctx):
    """The context of a call: ctx, or the defaults when None."""
    if ctx is None:
        return _default_ctx
    if not isinstance(ctx, Context):
        raise TypeError(f"{fn}: ctx must be an alexnet_cpu Context or None, got "
                        f"{type(ctx).__name__}")
    return <Context>ctx


cdef _set_default(str field, object value):
    global _default_ctx
    _default_ctx = _default_ctx.replace(**{field: value})   # validated by Context


def set_isa(str name):
    """The default SIMD path (for calls without a context and for new nets); refuses one
    this CPU lacks."""
    _set_default("isa", name)


def get_isa():
    return _default_ctx.isa


def set_precision(str name):
    """The default GEMM precision (for calls without a context and for new nets)."""
    _set_default("precision", name)


def get_precision():
    return _default_ctx.precision


def check_precision(str name):
    """Raise as set_precision would, without changing anything."""
    _default_ctx.replace(precision=name)


def set_conv_winograd(str mode):
    """The default Winograd choice for 3x3 stride-1 pad-1 convolutions: "auto" (where it
    measured faster), "off" or "on"."""
    _set_default("winograd", mode)


def get_conv_winograd():
    return _default_ctx.winograd


def _hide_bf16(bint hide):
    """Play a CPU without AVX512_BF16 (tests); the default falls back to fp32 if it was bf16
    on a path that then has no bf16 kernel."""
    global _bf16_hidden
    _bf16_hidden = hide
    try:
        check_precision(_default_ctx.precision)
    except RuntimeError:
        set_precision("fp32")


def _env_defaults():
    """ALEXNET_CPU_ISA, ALEXNET_CPU_BF16=0, ALEXNET_CPU_PRECISION, ALEXNET_CPU_WINOGRAD
    (0 | 1 | auto; AC_CONV_WINOGRAD is its old name), ALEXNET_CPU_AMX=0 (int8 on
    AVX512-VNNI where the CPU has AMX), read once at import."""
    if os.environ.get("ALEXNET_CPU_AMX") == "0":
        _set_default("amx", False)
    if os.environ.get("ALEXNET_CPU_ISA"):
        set_isa(os.environ["ALEXNET_CPU_ISA"])
    if os.environ.get("ALEXNET_CPU_BF16") == "0":
        _hide_bf16(True)
    if os.environ.get("ALEXNET_CPU_PRECISION"):
        set_precision(os.environ["ALEXNET_CPU_PRECISION"])
    for var in ("ALEXNET_CPU_WINOGRAD", "AC_CONV_WINOGRAD"):
        value = os.environ.get(var, "")
        if value:
            if value not in ("0", "1", "auto"):
                raise ValueError(f"{var} must be 0, 1 or auto, got {value!r}")
            set_conv_winograd({"0": "off", "1": "on"}.get(value, "auto"))
            break
