"""The repository stands on its own: nothing in its code, docstrings, printed strings, README or YAML comments
points to files outside it, and the data the tests need ships inside it."""

import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
# built from pieces so that this file does not match itself
OUTSIDE = [
    "reference" + "/",
    "shared" + "/",
    "../" + "shared",
    "papers" + ".md",
    "llm_cost" + "_model",
    "steer" + "ing",
    "MEMGYM_" + "SHARED",
    "/" + "work/",
]
PATTERN = re.compile("|".join(re.escape(p) for p in OUTSIDE), re.IGNORECASE)
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".html", ".j2", ""}


def repo_files() -> list[pathlib.Path]:
    """Tracked and untracked-but-not-ignored files (git), else every file outside the usual build folders."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\n")
        files = [ROOT / f for f in out if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist", "runs", "results"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES]


def test_nothing_points_outside_the_repository():
    me = pathlib.Path(__file__).resolve()
    hits = []
    for path in repo_files():
        if path.resolve() == me:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PATTERN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert len(repo_files()) > 50  # the scan saw the repository
    assert not hits, "out-of-repository pointers:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_should():
    for line in ["see " + "reference/" + "papers" + ".md §4", "the " + "steering repo", "../" + "shared/x"]:
        assert PATTERN.search(line)
    assert not PATTERN.search("sim/data/vidur_llama2_70b_gemm_medians.csv")
