"""What an install needs beyond a checkout: a console script for every command, the bundled configs
found by name wherever the package lies, and a wheel that carries them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from maae_tf import config as config_lib

REPO = Path(__file__).resolve().parents[1]


def setup_constant(name: str):
    """The literal value of setup.py's top-level `name = ...`."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    values = [ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)]
    assert len(values) == 1, name
    return values[0]


def command_modules() -> set[str]:
    """The command modules: maae_tf/<command>.py with a top-level `run()` (the console script's entry)."""
    found = set()
    for path in (REPO / "maae_tf").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body):
            found.add(path.stem)
    return found


def test_every_command_module_has_a_console_script():
    assert set(setup_constant("COMMANDS")) == command_modules()


@pytest.mark.parametrize("name", ["quickstart", "celeba", "celeba64"])
def test_a_bundled_config_resolves_by_name(name):
    assert config_lib.config_file(name) == os.path.join(config_lib.CONFIGS_DIR, f"{name}.py")
    assert os.path.isfile(config_lib.config_file(name))
    assert config_lib.config_file(f"{name}:arg") == os.path.join(config_lib.CONFIGS_DIR, f"{name}.py") + ":arg"


def test_a_path_is_kept_and_an_unknown_name_lists_the_names():
    assert config_lib.config_file("configs/quickstart.py") == "configs/quickstart.py"
    assert config_lib.config_file("elsewhere/mine.py:arg") == "elsewhere/mine.py:arg"
    with pytest.raises(ValueError, match="celeba, celeba64, quickstart"):
        config_lib.config_file("quickstrat")


def test_both_spellings_of_the_flag_resolve():
    quickstart = os.path.join(config_lib.CONFIGS_DIR, "quickstart.py")
    assert config_lib.with_config_files(["train", "--config=quickstart", "--config.seed=1"]) == [
        "train", f"--config={quickstart}", "--config.seed=1"]
    assert config_lib.with_config_files(["train", "--config", "quickstart", "--attr=x"]) == [
        "train", "--config", quickstart, "--attr=x"]


def train_elsewhere(tmp_path, *args):
    """`python -m maae_tf.train ARGS` run in `tmp_path`, far from the checkout's configs/."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "maae_tf.train", f"--workdir={tmp_path / 'run'}", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_an_unknown_config_name_is_one_error_line_naming_the_bundled_ones(tmp_path):
    r = train_elsewhere(tmp_path, "--config=quickstrat")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert lines == ["error: --config=quickstrat: no bundled config named 'quickstrat' (the bundled configs: "
                     "celeba, celeba64, quickstart; or give a config file's path)"]
    assert not (tmp_path / "run").exists()


def test_a_config_name_loads_the_bundled_file_from_any_folder(tmp_path):
    # a misspelt key is refused after the file loaded: the name found the bundled file
    r = train_elsewhere(tmp_path, "--config=quickstart", "--config.batchsize=4")
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"{os.path.join(config_lib.CONFIGS_DIR, 'quickstart.py')} has no key 'batchsize'" in r.stderr


def test_the_wheel_carries_the_configs_and_the_console_scripts(tmp_path):
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(exist_ok=True)
        (source / name).write_bytes((REPO / name).read_bytes())
    for folder in ("maae_tf", "configs"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                (source / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
                (source / path.relative_to(REPO)).write_bytes(path.read_bytes())
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("maae_tf-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {f"maae_tf/configs/{c}.py" for c in ("celeba", "celeba64", "quickstart")} <= names
    assert "maae_tf/photos/demo_page.html" in names
    for command in setup_constant("COMMANDS"):
        assert f"maae-{command.replace('_', '-')} = maae_tf.{command}:run" in entry_points
