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


def test_presets_lists_every_preset_with_numbers_and_sources(capsys):
    from memgym.sim import config

    assert cli.main(["presets", "models"]) == 0
    out = capsys.readouterr().out
    for name in config.presets("models"):
        assert name in out
    gpt3 = next(line for line in out.splitlines() if line.startswith("gpt3-175b"))
    assert "174.6" in gpt3 and "96/96" in gpt3 and "arXiv 2005.14165" in gpt3
    assert cli.main(["presets", "hardware"]) == 0
    out = capsys.readouterr().out
    for name in config.presets("hardware"):
        assert name in out
    h2m2 = next(line for line in out.splitlines() if line.startswith("h2m2-hbm3-lpddr5x"))
    assert "hbm 96 @ 3000" in h2m2 and "lpddr 512 @ 544" in h2m2 and "arXiv 2504.14893" in h2m2
    tdmem = next(line for line in out.splitlines() if line.startswith("a100-80gb-pcie4-tdmem"))
    assert "remote 64 @ 12.5*" in tdmem
    assert cli.main(["presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"models", "hardware"} and all(r["source"] for r in data["models"] + data["hardware"])
