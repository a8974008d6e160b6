"""Explicit 8-lane vectors for Numba kernels: float32 x 8 and int32 x 8 (LLVM ``<8 x float>``/``<8 x i32>``).

Numba's auto-vectoriser decides register blocking by itself and, for the RVQ scoring loop, spills what
should stay in registers. These intrinsics let a kernel say exactly which values are vectors: each call
lowers to one or a few LLVM vector instructions (one AVX2 instruction on x86-64; two SSE/NEON halves
elsewhere, same results). Values of the two types live in registers like scalars. Loads and stores are
unaligned and unchecked: the caller keeps ``index .. index + 7`` inside the array (flat element index
into a C-contiguous float32 array of any rank).

The float ops are IEEE single precision, lane by lane; ``fmuladd8`` may or may not fuse (LLVM's
``fmuladd``: fused where the target has FMA), so kernels using it must tolerate either rounding.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_F = ir.VectorType(ir.FloatType(), 8)
_I = ir.VectorType(ir.IntType(32), 8)


class F32x8Type(types.Type):
    """Eight float32 lanes."""

    def __init__(self) -> None:
        super().__init__(name="f32x8")


class I32x8Type(types.Type):
    """Eight int32 lanes."""

    def __init__(self) -> None:
        super().__init__(name="i32x8")


f32x8 = F32x8Type()
i32x8 = I32x8Type()


@register_model(F32x8Type)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _F)


@register_model(I32x8Type)
class _I32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _I)


def _is_f32_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"


def _vector_ptr(context, builder, arrty, arr, idx, idxty):
    """Pointer to element ``idx`` (flat) of a C-contiguous float32 array, as a vector pointer."""
    data = context.make_array(arrty)(context, builder, arr).data
    i = context.cast(builder, idx, idxty, types.intp)
    return builder.bitcast(builder.gep(data, [i]), _F.as_pointer())


def _splat(builder, value, vecty):
    """Broadcast a scalar to every lane (insertelement + zero shuffle: one vbroadcast)."""
    v = builder.insert_element(ir.Constant(vecty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(vecty, ir.Undefined), ir.Constant(_I, [0] * 8))


def _halving(builder, v, vecty, combine):
    """Reduce the 8 lanes with ``combine`` in three shuffle steps; the result is in lane 0."""
    for half in (4, 2, 1):
        mask = ir.Constant(_I, [(i + half) % 8 for i in range(8)])
        v = combine(v, builder.shuffle_vector(v, ir.Constant(vecty, ir.Undefined), mask))
    return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))


@intrinsic
def load8(typingctx, arr, idx):
    """``arr.flat[idx : idx + 8]`` as an f32x8."""
    if not (_is_f32_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_vector_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), align=4)

    return f32x8(arr, idx), codegen


@intrinsic
def store8(typingctx, arr, idx, v):
    """``arr.flat[idx : idx + 8] = v``."""
    if not (_is_f32_array(arr) and isinstance(idx, types.Integer) and v == f32x8):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1]), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@intrinsic
def splat8(typingctx, x):
    """A float32 in every lane."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0], _F)

    return f32x8(x), codegen


@intrinsic
def fmuladd8(typingctx, a, b, c):
    """``a * b + c`` lane by lane, fused or not (see the module docstring)."""
    if not (a == b == c == f32x8):
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F, [_F] * 3), "llvm.fmuladd.v8f32")
        return builder.call(fn, args)

    return f32x8(a, b, c), codegen


@intrinsic
def min8(typingctx, a, b):
    """Lane-wise minimum (``a if a < b else b``: one vminps; for non-NaN inputs)."""
    if not (a == b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered("<", args[0], args[1]), args[0], args[1])

    return f32x8(a, b), codegen


@intrinsic
def hmin8(typingctx, a):
    """The smallest lane, as a float32 (non-NaN inputs)."""
    if a != f32x8:
        return None

    def codegen(context, builder, sig, args):
        return _halving(builder, args[0], _F, lambda v, w: builder.select(builder.fcmp_ordered("<", v, w), v, w))

    return types.float32(a), codegen


@intrinsic
def le_mask8(typingctx, a, b):
    """All-ones int32 lanes where ``a <= b``, zero elsewhere."""
    if not (a == b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.sext(builder.fcmp_ordered("<=", args[0], args[1]), _I)

    return i32x8(a, b), codegen


@intrinsic
def isplat8(typingctx, x):
    """An integer (cast to int32) in every lane."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, context.cast(builder, args[0], sig.args[0], types.int32), _I)

    return i32x8(x), codegen


@intrinsic
def iota8(typingctx):
    """The lanes 0, 1, ..., 7."""

    def codegen(context, builder, sig, args):
        return ir.Constant(_I, list(range(8)))

    return i32x8(), codegen


@intrinsic
def iadd8(typingctx, a, b):
    """Lane-wise int32 addition (wrapping)."""
    if not (a == b == i32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.add(args[0], args[1])

    return i32x8(a, b), codegen


@intrinsic
def iand8(typingctx, a, b):
    """Lane-wise bitwise and."""
    if not (a == b == i32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.and_(args[0], args[1])

    return i32x8(a, b), codegen


@intrinsic
def hsum8(typingctx, a):
    """The sum of the lanes as an int64 (each lane widened first: no int32 overflow)."""
    if a != i32x8:
        return None

    def codegen(context, builder, sig, args):
        wide = ir.VectorType(ir.IntType(64), 8)
        return _halving(builder, builder.sext(args[0], wide), wide, builder.add)

    return types.int64(a), codegen
