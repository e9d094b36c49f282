"""A third-party adapter package installed for one test: its entry points, as pip would write
them, on ``sys.path``, so that the relay finds its adapters the way it finds any borough's."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import ENTRY_POINT_GROUP


def install_adapters(
    folder: Path, monkeypatch: pytest.MonkeyPatch, name: str, adapters: dict[str, str]
) -> None:
    """Make the distribution ``name`` installed, offering ``adapters`` (adapter type to
    ``module:Class``) in the ``caf_relay.adapters`` group, until the test ends."""
    dist_info = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{kind} = {where}" for kind, where in adapters.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(folder))
