"""Sweeps on Dask: a 2-worker LocalCluster (and an existing scheduler) give exactly the serial sweep's results."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_rd_sweep import without_timings

from nctk.entropy.errors import CodecError
from nctk.rd.sweep import sweep

pytest.importorskip("distributed")

QUALITIES = {"jpeg-420": [20, 60, 90], "webp": [30, 80]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask_images")
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(40, 56), (56, 40), (48, 48)]):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([255 * x / w, 255 * y / h, 128 + 60 * np.sin(x / 4 + i)], -1) + rng.normal(0, 6, (h, w, 3))
        paths.append(folder / f"img{i}.png")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(paths[-1])
    return paths


def test_two_workers_give_the_serial_results_exactly(files, tmp_path):
    serial = sweep(["jpeg-420", "webp"], files, QUALITIES, progress=False, cache=False)
    parallel = sweep(["jpeg-420", "webp"], files, QUALITIES, progress=False, cache=tmp_path / "c", workers=2)
    assert serial.keys() == parallel.keys()
    for cid in serial:
        assert without_timings(parallel[cid]) == without_timings(serial[cid])
        assert all(t > 0 for t in parallel[cid]["results"]["encoding_time"])
    # the items the workers measured were cached here, so a rerun measures nothing
    again = sweep(["jpeg-420", "webp"], files, QUALITIES, progress=False, cache=tmp_path / "c", workers=2)
    assert [r["meta"]["cached_items"] for r in again.values()] == [9, 6]
    assert all(without_timings(again[c]) == without_timings(serial[c]) for c in serial)


def test_an_existing_scheduler_runs_the_items(files):
    from distributed import LocalCluster

    serial = sweep(["jpeg-420"], files[:2], {"jpeg-420": [50]}, progress=False, cache=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = sweep(["jpeg-420"], files[:2], {"jpeg-420": [50]}, progress=False, cache=False,
                       scheduler=cluster.scheduler_address)
    assert without_timings(remote["jpeg-420"]) == without_timings(serial["jpeg-420"])


def test_a_worker_error_is_the_serial_error(files, tmp_path):
    bad = tmp_path / "gone.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad)
    # the file passes the up-front probe, then disappears before the workers read it
    from nctk.rd.images import probe

    info = probe(bad)
    bad.unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("nctk.rd.images.probe", lambda p: info if str(p).endswith("gone.png") else probe(p))
        with pytest.raises(CodecError, match="cannot read image .*gone.png"):
            sweep(["jpeg-420"], [files[0], bad], {"jpeg-420": [50]}, progress=False, cache=False, workers=1)


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "positive integer"),
    ({"workers": True}, "positive integer"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "not both"),
])
def test_bad_parallel_settings_are_refused_up_front(files, kwargs, message):
    with pytest.raises(CodecError, match=message):
        sweep(["jpeg-420"], files, progress=False, cache=False, **kwargs)


def test_an_unreachable_scheduler_is_one_clear_error(files):
    with pytest.raises(CodecError, match="cannot reach the Dask scheduler"):
        sweep(["jpeg-420"], files[:1], {"jpeg-420": [50]}, progress=False, cache=False,
              scheduler="tcp://127.0.0.1:9")
