"""Shared fixtures: the two CPU kernel paths of the rANS coder (ahead-of-time build and Numba JIT)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# Fixtures that only select a code path (monkeypatching a module attribute) are safe to share between the
# examples of a property test.
settings.register_profile("nctk", suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("nctk")


@pytest.fixture(scope="session")
def aot_module():
    """The ahead-of-time rANS kernels for the current sources, built here if ``make`` has not yet."""
    from nctk.entropy import rans_aot

    try:
        rans_aot.build()
    except Exception as e:  # no C compiler on this machine: the JIT path still serves every call
        pytest.skip(f"ahead-of-time rANS kernels cannot be built here ({type(e).__name__}: {e})")
    module = rans_aot.kernels()
    if module is None:
        pytest.skip("no writable kernel cache folder for the ahead-of-time build")
    return module


@pytest.fixture(params=["jit", "aot"])
def kernel_path(request, monkeypatch) -> str:
    """Run a test once with the Numba JIT kernels and once with their ahead-of-time build."""
    from nctk.entropy import rans_numba

    module = request.getfixturevalue("aot_module") if request.param == "aot" else None
    monkeypatch.setattr(rans_numba, "_aot_module", lambda n: module)
    return request.param
