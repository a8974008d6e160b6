"""image-wavelet's integer context model: the reference and Numba twins agree exactly, strips equal whole bands,
artifacts outside the exactness bounds are refused, and table choice computes with integers only (no float a decoder
could round differently: the issue's "perturb every float before table choice" has nothing to perturb)."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nctk.codec.artifacts import ArtifactError, open_folder, write
from nctk.codec.image import choice, context, context_numba, context_ref, model, quantiser, subbands, transform, wavelet
from nctk.codec.image.choice import Grid, choose
from nctk.codec.image.model import Layer, Model, Net
from nctk.codec.image.wavelet import ImageWavelet

TEST_MODEL = Path(__file__).with_name("golden") / "image_model"


def random_net(rng: np.random.Generator, n_in: int, widths: tuple[int, ...], n_out: int, groups: int,
               kernel: int = 3, big: bool = False) -> Net:
    """A net with random integer parameters inside the model's bounds (``big``: weights and biases at their
    extremes, so accumulators come near 2**31 if anything could)."""
    chans = (n_in,) + widths + (2 * n_out,)
    layers = []
    for i in range(len(chans) - 1):
        k = 1 if i == len(chans) - 2 else kernel
        w = rng.integers(-127, 128, (chans[i + 1], chans[i], k, k)).astype(np.int8)
        if big:
            w[:] = np.where(rng.random(w.shape) < 0.5, -127, 127)
        bshape = (groups, 2, chans[i + 1]) if i == 0 else (chans[i + 1],)
        b = rng.integers(-(1 << 29), 1 << 29, bshape) if big else rng.integers(-5000, 5000, bshape)
        m = rng.integers(1 << 20, 1 << 30, chans[i + 1])
        s = rng.integers(28, 40, chans[i + 1])
        layers.append(Layer(w, b.astype(np.int64), m.astype(np.int64), s.astype(np.int64), w.astype(np.int16)))
    return Net("detail", tuple(layers), rng.integers(-(1 << 20), 1 << 20, chans[1]).astype(np.int64))


@pytest.mark.parametrize("big", [False, True])
def test_reference_and_numba_agree_exactly(big):
    rng = np.random.default_rng(11 + big)
    net = random_net(rng, 12, (16, 8), 9, 5, big=big)
    for h, w in ((1, 1), (2, 3), (17, 29)):
        x = rng.integers(-subbands.INPUT_MAX, subbands.INPUT_MAX + 1, (12, h, w))
        if big:
            x[:] = np.where(rng.random(x.shape) < 0.5, -subbands.INPUT_MAX, subbands.INPUT_MAX)
        bias = net.first_bias(int(rng.integers(5)), int(rng.integers(2)), int(rng.integers(1, 5000)))
        ref = context_ref.run(net, x, bias)
        fast = context_numba.run(net, x, bias)
        assert ref.dtype == np.int64 and fast.dtype == np.int32 and ref.shape == (18, h, w)
        assert np.array_equal(ref, fast)
        if not big:
            assert len(np.unique(ref)) > 10  # not a degenerate (all clamped) network


def test_strips_equal_one_pass():
    rng = np.random.default_rng(3)
    net = random_net(rng, 12, (8, 8), 9, 5, kernel=5)
    x = rng.integers(-3000, 3000, (12, 45, 19))
    bias = net.first_bias(2, 1, 700)
    whole = context_ref.run(net, x, bias)
    for rows in (1, 7, 16, 44):
        for backend in context.BACKENDS:
            assert np.array_equal(context.predict(net, x, bias, backend, rows=rows), whole), (rows, backend)


def test_model_loads_and_checks_bounds(tmp_path):
    art = open_folder(TEST_MODEL)
    m = Model.from_artifact(art)
    assert set(m.nets) == {"low", "detail"} and len(m.tables) == m.grid.n_scales * m.grid.n_frac
    from safetensors.numpy import save

    weights = art.weights()
    files = {n: (TEST_MODEL / n).read_bytes() for n in art.manifest["files"]}

    def variant(name: str, changes: dict, config: bytes | None = None) -> Path:
        folder = tmp_path / name
        write(folder, "image-wavelet-test", "image-wavelet",
              {**files, "weights.safetensors": save(dict(weights, **changes)),
               "model.json": config or files["model.json"]})
        return folder

    too_wide = np.full((4, 12, 7, 7), 127, dtype=np.int8)  # sum |w| * 32767 > 2**30
    bad = {"overflow": {"detail.0.weight": too_wide},
           "dtype": {"low.0.weight": weights["low.0.weight"].astype(np.int16)},
           "shift": {"low.0.shift": np.zeros_like(weights["low.0.shift"])},
           "extra": {"other": np.zeros(3, np.int32)}}
    for name, change in bad.items():
        with pytest.raises(ArtifactError):
            Model.from_artifact(open_folder(variant(name, change)))
    with pytest.raises(ArtifactError, match="model.json"):
        Model.from_artifact(open_folder(variant("grid", {}, json.dumps({"grid": {"n_frac": 3}}).encode())))


def test_choice_matches_the_family_convention():
    """Table (j, f) and base: the integer rule equals ParametricFamily's float bucketing on exactly representable
    inputs (scales on the grid, means on multiples of 1/n_frac steps)."""
    grid = Grid()
    d = 160  # 10 pixels
    j = np.arange(grid.n_scales)
    l8 = grid.log2_scale_min_q8 + j * (1 << grid.scale_shift) + (quantiser.log2_q8(d) - choice.LOG2_16_Q8)
    mu4 = np.arange(-50, 50) * d // grid.n_frac  # means of -50/16 .. 49/16 steps
    idx, base = choose(np.repeat(mu4, len(j)), np.tile(l8, len(mu4)), d, grid)
    assert np.array_equal(idx // grid.n_frac, np.tile(j, len(mu4)))
    m = np.repeat(np.arange(-50, 50), len(j))
    assert np.array_equal(base, np.floor_divide(m, grid.n_frac)) and np.array_equal(idx % grid.n_frac, m % 16)
    idx, _ = choose(np.zeros(2, np.int64), np.array([-10**6, 10**6]), d, grid)  # clamped to the grid
    assert idx.tolist() == [0, (grid.n_scales - 1) * grid.n_frac]


# ------------------------------------------------------------------------------- no floats before table choice

# Everything a decoder runs from the bitstream to the table index and on to the pixels.
DECODER_FUNCTIONS = [
    subbands.anchor_mask, subbands.coded_channels, subbands._anchors, subbands.low_inputs, subbands.detail_inputs,
    choice.choose, quantiser.log2_q8, quantiser._step, quantiser.low_steps, quantiser.detail_steps,
    quantiser.dequantise, quantiser._per_channel, model.Net.first_bias, context.predict, context.strip_rows,
    context_ref.run, context_ref._requantise, context_numba.run, context_numba._conv.py_func,
    transform.synthesis_level, transform._inverse_1d, transform._step, transform._next, transform._prev,
    transform._cols, transform.colour_inverse, wavelet._traverse, wavelet.ImageWavelet.decode_pixels,
]
FLOAT_NAMES = {"float", "float16", "float32", "float64", "double", "exp", "exp2", "log", "log2", "sqrt", "math",
               "true_divide", "divide", "floor", "ceil", "rint", "round"}


def test_decoder_code_has_no_float_operations():
    """Static proof: no float literal, no true division, no float type or transcendental function in any decoder
    function's source."""
    for fn in DECODER_FUNCTIONS:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        body = tree.body[0]
        body.body = [s for s in body.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        for node in ast.walk(body):
            where = f"{fn.__qualname__}: line {getattr(node, 'lineno', '?')}"
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), where
            assert not isinstance(node, (ast.Div,)), f"{where}: true division"
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            assert name not in FLOAT_NAMES, f"{where}: {name}"


class IntOnly(np.ndarray):
    """An array that lets numpy touch it only with integer and boolean operands and results (records each call)."""

    calls: list[str] = []

    @staticmethod
    def _check(values, what: str) -> None:
        for v in values:
            if isinstance(v, (list, tuple)):
                IntOnly._check(v, what)
                continue
            kind = v.dtype.kind if isinstance(v, (np.ndarray, np.generic)) else (
                "f" if isinstance(v, (float, complex)) else "i")
            assert kind in "iub", f"{what} touched a {kind!r} operand: {v!r:.80}"

    @staticmethod
    def _plain(v):
        if isinstance(v, IntOnly):
            return v.view(np.ndarray)
        if isinstance(v, (list, tuple)):
            return type(v)(IntOnly._plain(x) for x in v)
        if isinstance(v, dict):
            return {k: IntOnly._plain(x) for k, x in v.items()}
        return v

    @staticmethod
    def _wrap(v):
        if isinstance(v, np.ndarray) and not isinstance(v, IntOnly):
            return v.view(IntOnly)
        if isinstance(v, tuple):
            return tuple(IntOnly._wrap(x) for x in v)
        return v

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        IntOnly._check(inputs + tuple(kwargs.get("out", ())), ufunc.__name__)
        result = getattr(ufunc, method)(*IntOnly._plain(inputs), **IntOnly._plain(kwargs))
        IntOnly._check(result if isinstance(result, tuple) else (result,), ufunc.__name__)
        IntOnly.calls.append(ufunc.__name__)
        return IntOnly._wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        IntOnly._check(args, func.__name__)
        result = func(*IntOnly._plain(args), **IntOnly._plain(kwargs))
        IntOnly._check(result if isinstance(result, tuple) else (result,), func.__name__)
        IntOnly.calls.append(func.__name__)
        return IntOnly._wrap(result)


def _traced(m: Model) -> Model:
    nets = {}
    for name, net in m.nets.items():
        layers = tuple(Layer(*(a.view(IntOnly) for a in (la.weight, la.bias, la.mult, la.shift, la.weight16)))
                       for la in net.layers)
        nets[name] = Net(name, layers, net.cond.view(IntOnly))
    return replace(m, nets=nets)


def test_table_choice_touches_only_integers():
    """Runtime proof: decode a file with every array of the decoder's table choice and reconstruction traced;
    every numpy operation on them sees and makes only integers, and the pixels equal the normal decode."""
    from nctk.entropy.coder import decode_chunks

    codec = ImageWavelet(TEST_MODEL, backend="reference")
    img = np.random.default_rng(2).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    enc = codec.encode(img, quality=4)
    d = enc.header["step"]
    traced = _traced(codec.model())
    bands = {"ll": np.zeros((3, 2, 3), np.int64).view(IntOnly)}
    for k in range(1, 6):
        bands[f"l{k}"] = np.zeros((9, 64 >> k, 96 >> k), np.int64).view(IntOnly)

    def visit(name, q, chans, sel, idx, base):
        assert isinstance(idx, IntOnly) and isinstance(base, IntOnly) and idx.dtype == np.int32
        sec = enc.section(name)
        sym = decode_chunks(sec.chunks, idx.view(np.ndarray), traced.tables, sec.counts, lanes=1)
        vals = sym.astype(np.int64).view(IntOnly) + base
        per = int(sel.sum())
        for i, ch in enumerate(chans):
            q[ch][sel] = vals[i * per : (i + 1) * per]

    IntOnly.calls = []
    rec = wavelet._traverse(traced, d, 3, bands, visit, "reference")
    px = transform.colour_inverse(rec[:, :40, :70], 3)
    assert isinstance(px, IntOnly) and len(IntOnly.calls) > 500
    assert {"tensordot", "clip", "right_shift", "floor_divide", "pad"} <= set(IntOnly.calls)
    assert np.array_equal(px.view(np.ndarray), codec.decode_pixels(enc))


def test_int_only_catches_floats():
    a = np.arange(4).view(IntOnly)
    with pytest.raises(AssertionError, match="touched"):
        a * 0.5
    with pytest.raises(AssertionError, match="touched"):
        a / 2
    with pytest.raises(AssertionError, match="touched"):
        np.sqrt(a)
