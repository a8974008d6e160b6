"""Array mode takes only what comes back exactly: everything else is a CodecError saying what to pass,
never a silently altered round trip (the list is in nctk.compress's docstring)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nctk
from nctk.codec.tensor.lossless import TensorLossless
from nctk.entropy.errors import CodecError

pytestmark = [pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")]


def back(x):
    return nctk.decompress(nctk.compress(x))


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return (type(b) is np.ndarray and b.dtype == a.dtype and b.dtype.str == a.dtype.str and b.shape == a.shape
            and a.tobytes() == b.tobytes())


# -------------------------------------------------------------------------------------------- numpy

class Tagged(np.ndarray):
    pass


@pytest.mark.parametrize(("make", "hint"), [
    (lambda: np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), "mask"),
    (lambda: np.matrix([[1, 2], [3, 4]]), r"np\.asarray"),
    (lambda: np.arange(6.0).view(Tagged), r"np\.asarray"),
    (lambda: np.rec.fromarrays([np.arange(3), np.ones(3)]), r"np\.asarray"),
    (lambda: np.float32(1.5), r"np\.asarray"),
    (lambda: np.int64(7), r"np\.asarray"),
    (lambda: np.zeros(3, np.dtype([("a", "u1"), ("b", "<f8")], align=True)), "align=True"),
    (lambda: np.zeros(3, np.dtype([("s", np.dtype([("a", "u1"), ("b", "<i4")], align=True)), ("c", "u1")])),
     "align=True"),
])
def test_numpy_inputs_that_would_change_are_refused(make, hint):
    x = make()
    with pytest.raises(CodecError, match=hint):
        nctk.compress(x)
    with pytest.raises(CodecError, match=hint):  # the codec itself, not only the API
        TensorLossless().encode(x)


def test_memmap_is_refused_and_its_data_compresses_as_an_array(tmp_path):
    m = np.memmap(tmp_path / "m.bin", dtype=np.float32, mode="w+", shape=(100,))
    m[:] = np.arange(100)
    with pytest.raises(CodecError, match=r"memmap.*np\.asarray"):
        nctk.compress(m)
    assert same_array(np.asarray(m), back(np.asarray(m)))


@pytest.mark.parametrize("dt", [">f2", ">f4", ">f8", ">i2", ">i4", ">i8", ">u2", ">u8", ">c8", ">c16", "<f4", "<i8"])
def test_byte_order_is_kept(dt):
    x = (np.arange(-50, 250, dtype=np.float64) * 1.25).astype(dt)
    y = back(x)
    assert same_array(x, y) and y.dtype.byteorder == x.dtype.byteorder


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (0, 0), (1,), (2, 1, 1, 3)])
@pytest.mark.parametrize("dt", ["<f4", ">i2", "u1", "?", "<c16", "<M8[ns]", "U3", "S5", "V4"])
def test_zero_size_0d_and_odd_dtypes(shape, dt):
    x = np.zeros(shape, dt)
    if x.size:
        x.reshape(-1)[0] = np.ones((), dt) if dt[0] not in "USV" else np.array(b"\x01\x02\x03", dt)
    assert same_array(x, back(x))


def test_unaligned_structured_dtypes_keep_offsets_and_itemsize():
    packed = np.dtype([("a", "u1"), ("b", "<f8")])
    padded = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8], "itemsize": 24})
    for dt in (packed, padded):
        x = np.zeros(4, dt)
        x["a"], x["b"] = np.arange(4), np.linspace(0, 1, 4)
        y = back(x)
        assert y.dtype == dt and y.dtype.itemsize == dt.itemsize and y.dtype.fields == dt.fields
        assert y.tobytes() == x.tobytes()


def test_fortran_order_is_kept_other_views_come_back_c_ordered():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    f = back(np.asfortranarray(base))
    assert f.flags.f_contiguous and np.array_equal(f, base)
    v = back(base[:, ::2])
    assert v.flags.c_contiguous and np.array_equal(v, base[:, ::2])


# -------------------------------------------------------------------------------------------- torch

class MyTensor(torch.Tensor):
    pass


@pytest.mark.parametrize(("make", "hint"), [
    (lambda: torch.nn.Parameter(torch.ones(3)), r"detach\(\)"),
    (lambda: torch.nn.Parameter(torch.ones(3), requires_grad=False), r"detach\(\)"),
    (lambda: torch.ones(3, requires_grad=True), r"detach\(\)"),
    (lambda: torch.ones(3, requires_grad=True) * 2, r"detach\(\)"),
    (lambda: torch.ones(3).as_subclass(MyTensor), "subclass"),
    (lambda: torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last), r"channels_last.*contiguous\(\)"),
    (lambda: torch.randn(2, 3, 4, 5, 6).to(memory_format=torch.channels_last_3d), "channels_last_3d"),
    (lambda: torch.eye(3).to_sparse(), "layout"),
    (lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]), "nested"),
])
def test_torch_inputs_that_would_change_are_refused(make, hint):
    with pytest.raises(CodecError, match=hint):
        nctk.compress(make())


def test_torch_detached_contiguous_views_and_conj_come_back_equal():
    p = torch.nn.Parameter(torch.randn(4, 5))
    t = back(p.detach())
    assert type(t) is torch.Tensor and not t.requires_grad and torch.equal(t, p.detach())
    cl = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    assert torch.equal(back(cl.contiguous()), cl)
    x = torch.randn(6, 7)
    for view in (x.T, x[::2, 1:], x.unsqueeze(0).expand(3, 6, 7)):  # strided views come back contiguous
        y = back(view)
        assert y.is_contiguous() and torch.equal(y, view)
    c = torch.randn(5, dtype=torch.complex64)
    assert torch.equal(back(c.conj()), c.conj().resolve_conj())
    one_channel = torch.randn(2, 1, 4, 4).to(memory_format=torch.channels_last)  # also plainly contiguous
    assert torch.equal(back(one_channel), one_channel)
