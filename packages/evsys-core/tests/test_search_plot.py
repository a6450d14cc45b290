"""``evsys evolve show NAME --plot FILE.png``: best-so-far against budget and score against each param."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from test_search import host, search_config, write  # noqa: F401 - host is the fixture

from evsys_sdk.cli.main import main

pytestmark = pytest.mark.timeout(120)


@pytest.mark.plot
def test_show_plot_writes_one_panel_per_param_after_the_best_curve(tmp_path: Path, host: Any, capsys: Any) -> None:  # noqa: F811
    assert main(["evolve", str(write(tmp_path, search_config(tmp_path)))]) == 0
    out = tmp_path / "plots" / "evo.png"
    assert main(["evolve", "show", "evo", "--plot", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (5 * 450, 400)  # the best-so-far curve + the 4 searched params, at 100 dpi
    assert not list(out.parent.glob(".*tmp*"))
