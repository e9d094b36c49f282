"""scripts/bootstrap on a machine whose Python cannot make a venv with pip in it, as Debian's
python3 without python3-venv: the README's first command must say what to install, and work once
it is installed."""

import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

# venv makes the folder and its python, then fails at ensurepip, as Debian's does.
PYTHON_WITHOUT_VENV = f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
  {sys.executable} -m venv --without-pip "$3"
  echo "ensurepip is not available." >&2
  exit 1
fi
exec {sys.executable} "$@"
"""


def _checkout(tmp_path: Path) -> Path:
    """The files bootstrap reads, in a folder of their own."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPOSITORY / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    shutil.copy2(REPOSITORY / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / "python-without-venv"
    python.write_text(PYTHON_WITHOUT_VENV)
    python.chmod(0o755)
    return tmp_path


def _bootstrap(checkout: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(checkout / "scripts" / "bootstrap")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(checkout / "python-without-venv")},
    )


def test_a_python_that_cannot_make_a_venv_is_named_and_leaves_no_half_made_venv(tmp_path):
    checkout = _checkout(tmp_path)

    run = _bootstrap(checkout)

    assert run.returncode == 1
    assert "apt-get install python3-venv" in run.stderr
    assert not (checkout / ".venv").exists()


def test_a_venv_left_without_pip_is_made_again_rather_than_installed_into(tmp_path):
    checkout = _checkout(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(checkout / ".venv")])

    run = _bootstrap(checkout)

    assert "No module named pip" not in run.stderr
    assert "apt-get install python3-venv" in run.stderr
    assert not (checkout / ".venv").exists()


# A python that notes each pip install it is asked for, and does nothing else with it: whether
# bootstrap installs is what is tested, not pip.
PYTHON_NOTING_INSTALLS = f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = pip ]; then
  echo "$@" >> "$(dirname "$0")/../pip-installs"
  exit 0
fi
exec {sys.executable} "$@"
"""


def _installed_venv(tmp_path: Path) -> Path:
    """A checkout whose .venv has a python and pip, so bootstrap installs into it, not makes it."""
    checkout = _checkout(tmp_path)
    bin_folder = checkout / ".venv" / "bin"
    bin_folder.mkdir(parents=True)
    for command in ("python", "pip"):
        (bin_folder / command).write_text(PYTHON_NOTING_INSTALLS)
        (bin_folder / command).chmod(0o755)
    return checkout


def _installs(checkout: Path, *args: str) -> list[str]:
    """The pip installs ``scripts/bootstrap *args`` asked for."""
    noted = checkout / ".venv" / "pip-installs"
    noted.unlink(missing_ok=True)
    run = subprocess.run(
        [str(checkout / "scripts" / "bootstrap"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    return noted.read_text().splitlines() if noted.exists() else []


def test_a_dev_install_counts_for_the_plain_one_but_not_the_other_way_round(tmp_path):
    checkout = _installed_venv(tmp_path)

    assert _installs(checkout, "dev") == ["-m pip install --editable .[dev]"]
    assert _installs(checkout) == []  # scripts/demo after bootstrap dev installs nothing again
    assert _installs(checkout, "dev") == []

    (checkout / "pyproject.toml").write_text(
        (checkout / "pyproject.toml").read_text() + "\n# changed\n"
    )
    assert _installs(checkout) == ["-m pip install --editable ."]
    assert _installs(checkout, "dev") == ["-m pip install --editable .[dev]"]
