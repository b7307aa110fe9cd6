"""The package's shape: one `svs` namespace, layers that import only downward, rooms of a
readable size. These read the real install, not a list kept by hand."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "verifiers", "synthesizers", "pipeline", "trainer_bridge", "flows")
GENERIC = ("pipeline", "verifiers", "flows", "synthesizers", "trainer_bridge", "core")
MAX_LINES = 400


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_layers_contract_holds():
    """import-linter's `layers` contract of pyproject.toml (exhaustive, function-level
    imports included) on the installed package."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_package_cycles_between_the_layers():
    """Read from the imports (ast, no code run): the package graph has no cycle."""
    edges = set()
    for path in _sources():
        here = path.relative_to(ROOT).parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "svs" and len(parts) > 1 and parts[1] in PACKAGES and parts[1] != here:
                    edges.add((here, parts[1]))
    assert not {(a, b) for a, b in edges if (b, a) in edges}


def test_no_source_file_is_over_the_size_limit():
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_LINES}
    assert not long, f"split these along a seam of the diagram: {long}"


def test_every_source_imports_through_the_namespace():
    """No module reaches a sibling by its bare top-level name (that would load a second
    copy of it, or somebody else's `verifiers`)."""
    bare = []
    for path in [*_sources(), *ROOT.joinpath("tests").rglob("*.py"),
                 *ROOT.joinpath("benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and not node.level else [])
            bare += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in GENERIC]
    assert not bare


@pytest.mark.slow  # builds a wheel and a fresh venv, and installs `verifiers` from the index
def test_wheel_installs_only_the_svs_namespace_beside_the_pypi_verifiers(tmp_path):
    """`pip install .` puts nothing generic at the top level: the PyPI `verifiers`
    package installs beside svs and both import, each its own; README.md does not ship;
    the layers contract also holds on the non-editable install."""
    wheels = tmp_path / "wheels"
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "runs", "build", "*.egg-info", "__pycache__", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(source)], check=True, timeout=600, capture_output=True)
    wheel = next(wheels.glob("svs-*.whl"))
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # no dependencies: the package's __init__ files import nothing but themselves
    subprocess.run([*pip, "--no-deps", str(wheel), "verifiers==0.4.0"], check=True,
                   timeout=600, capture_output=True)
    subprocess.run([*pip, "import-linter>=2.1"], check=True, timeout=600, capture_output=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = (
        "import importlib.metadata as md, json, verifiers, svs, svs.verifiers, svs.pipeline, "
        "svs.synthesizers, svs.trainer_bridge, svs.flows, svs.core\n"
        "files = [str(f) for f in md.distribution('svs').files]\n"
        "print(json.dumps({'verifiers': verifiers.__file__, 'svs_verifiers': svs.verifiers.__file__,"
        " 'tops': sorted({f.split('/')[0] for f in files})}))\n")
    done = subprocess.run([str(python), "-c", probe], cwd=outside, capture_output=True,
                          text=True, timeout=120, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "/svs/" not in found["verifiers"] and found["verifiers"].endswith("verifiers/__init__.py")
    assert found["svs_verifiers"].endswith("svs/verifiers/__init__.py")
    # '..' is the console script (bin/svs) in RECORD
    assert [t for t in found["tops"] if not t.startswith(("svs", ".."))] == [], found["tops"]
    assert not any(t.endswith(".md") for t in found["tops"])
    lint = subprocess.run([str(env_dir / "bin" / "lint-imports"), "--config",
                           str(ROOT / "pyproject.toml")], cwd=outside, capture_output=True,
                          text=True, timeout=300)
    assert lint.returncode == 0 and "1 kept, 0 broken" in lint.stdout, lint.stdout[-3000:]
    shutil.rmtree(env_dir)
