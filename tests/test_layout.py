"""The package layout: one installed namespace, layers that import only downwards, light start-up."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]  # "nctk.codec" -> "codec"

# What each layer may import from nctk (besides itself). Data flows cli -> codec -> quantizer -> entropy;
# rd and train sit above codec; inference never imports train.
ALLOWED = {
    "entropy": {"entropy"},
    "codec": {"codec", "entropy"},
    "rd": {"rd", "codec", "entropy"},
    "train": {"train", "rd", "codec", "entropy"},
    "cli": {"cli", "rd", "train", "codec", "entropy", ""},
    "nctk": {"codec", "entropy", ""},
    "assets": set(),
}


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def nctk_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top layer) of every ``nctk...`` import in a file; bare ``codec``/``entropy``/``cli`` too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names if node.module == "nctk"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nctk":
                out.append((node.lineno, parts[1] if len(parts) > 1 and parts[1] in ALLOWED else ""))
            elif parts[0] in ("codec", "entropy", "cli", "rd", "train"):
                out.append((node.lineno, "BARE " + parts[0]))
    return out


def test_every_package_folder_is_installed_under_nctk():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert all(p == "nctk" or p.startswith("nctk.") for p in listed)
    for pkg, folder in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([pkg, *rel.parts])
            assert name in listed, f"{init.parent} holds a package missing from pyproject's packages"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer):
    folder = PACKAGE_DIRS.get(f"nctk.{layer}", layer)
    for path in python_files(folder):
        for line, target in nctk_imports(path):
            assert not target.startswith("BARE"), f"{path}:{line} imports a bare top-level {target[5:]!r}"
            assert target in ALLOWED[layer], f"{path}:{line}: {layer} must not import nctk.{target}"


def test_wheel_installs_only_the_nctk_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("nctk-*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"nctk"}
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("nctk/__init__.py", "nctk/cli/main.py", "nctk/codec/api.py", "nctk/entropy/rans_ref.py"):
        assert module in names


def heavy_modules_after(code: str) -> list[str]:
    probe = code + "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'numba', 'torch'}))"
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return eval(p.stdout.strip().splitlines()[-1])


def test_import_nctk_and_the_cli_are_light():
    assert heavy_modules_after("import nctk, nctk.cli.main, nctk.entropy.errors") == []


def test_help_and_codecs_import_neither_numba_nor_torch():
    code = ("import contextlib, io\nfrom nctk.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['codecs'])\n    main(['codecs', '--json'])\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n")
    assert heavy_modules_after(code) == []
