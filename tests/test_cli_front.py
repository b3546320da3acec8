"""The command line's front door: `estimate` warns when tiers spill; `presets` lists the presets."""

import json

from memgym.sim.estimate import estimate, format_table
from memgym.train import cli


def test_estimate_warns_in_one_line_when_tiers_spill(capsys):
    r = estimate("llama2-70b", "a100-80gb", 8, 2048)
    assert r["placement"]["host_ddr"] > 0.4
    table = format_table(r).splitlines()
    assert table[0].startswith("warning: llama2-70b") and "hbm holds 80 GB" in table[0]
    assert "44% (62 GB) to host_ddr spills" in table[0]
    assert sum(line.startswith("warning") for line in table) == 1
    assert cli.main(["estimate", "--model", "llama2-70b", "--batch", "8", "--context", "2048", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warning"] == r["warning"] and err.strip() == r["warning"]


def test_estimate_is_silent_when_everything_fits():
    r = estimate("llama2-7b", "a100-80gb", 8, 2048)
    assert r["warning"] is None and r["placement"] == {"hbm": 1.0}
    assert not format_table(r).startswith("warning")
