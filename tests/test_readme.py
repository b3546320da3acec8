"""The README's Python code runs as written (every ```python block, in order, in one namespace)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(README.read_text())
    assert blocks, "the README has no ```python block"
    monkeypatch.chdir(tmp_path)  # anything a block writes lands here
    namespace = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "speedup over LPDDR-only" in out and "memory use" in out  # the snippet's own prints happened
    assert namespace["mask"].dtype == bool and namespace["model"].num_timesteps >= 128


def test_readme_documents_the_module_prefixed_id_and_masks():
    text = README.read_text()
    assert '"memgym:memgym/KernelMapping-v0"' in text
    assert 'get_wrapper_attr("action_masks")' in text and 'render_mode="rgb_array"' in text


def test_block_extraction():
    assert python_blocks("x\n```python\na = 1\n```\n```bash\nls\n```\n") == ["a = 1\n"]
