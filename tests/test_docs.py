"""The documentation works as written: README.md and docs/*.md.

- README.md is the front door: at most 200 lines, its test command is the one CI (`.ci/run`) runs.
- Every relative link (README.md, docs/*.md, METHODS.md) names a file that exists, and a `#anchor`
  names a heading of that file; every docs page is listed in docs/README.md.
- Every `motab <command>` / `python -m motab <command>` (code blocks and inline code) names a
  command that `python -m motab --help` lists, and each of its `--flags` is in that command's own
  `--help`; every `python <script>.py` names a script whose `--help` has its flags.
- Every `snakemake ...` line of a code block is dry-run here, verbatim (the bare `--profile slurm`
  resolves as after scripts/bootstrap.sh), unless RUN_BY_TEST names the test that runs it.
- The grading example of docs/evaluation.md runs verbatim and prints what the page shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = [*PAGES, REPO / "METHODS.md"]

DEPLOYMENT_TOOLS = {"apptainer": ("apptainer", "singularity"), "conda": ("conda", "mamba")}
# Snakemake lines that cannot be dry-run on their own, and the test that runs each (file::test).
RUN_BY_TEST = {
    # needs a running SLURM (scripts/slurm_local.sh start): run on a one-node SLURM where root
    "--profile slurm all --config select=[toy] --slurm-status-command squeue --slurm-no-account "
    "--slurm-init-seconds-before-status-checks 1": "tests/test_slurm.py::test_every_rule_of_the_toy_study_runs_as_an_sbatch_job",
    # needs a finished run to report on
    "--report report.html": "tests/test_workflow_e2e.py::test_report_has_tables_chart_and_curves",
}


def code_blocks(text: str) -> list[str]:
    """The code blocks of a Markdown page: fenced, or indented 4+ spaces after a blank line."""
    blocks, current, fenced, prev_blank = [], [], False, True
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if fenced:
                blocks.append("\n".join(current))
                current = []
            fenced = not fenced
        elif fenced:
            current.append(line)
        elif line.startswith("    ") and line.strip() and (prev_blank or current):
            current.append(line.strip())
        elif current:  # a blank or unindented line ends an indented block
            blocks.append("\n".join(current))
            current = []
        prev_blank = not line.strip()
    return blocks + (["\n".join(current)] if current else [])


def commands(block: str) -> list[list[str]]:
    """The commands of a code block as argv lists: continuation lines joined, `#` comments dropped,
    `a && b` split, leading VAR=value words dropped."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # not shell (YAML, a diff, JSON): no command in it
            continue
        argv: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", ";", "||"):
                while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                    argv.pop(0)
                if argv:
                    found.append(argv)
                argv = []
            else:
                argv.append(word)
    return found


def inline_code(text: str) -> list[str]:
    return [" ".join(span.split()) for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", text)]


def name(page: Path) -> str:
    return str(page.relative_to(REPO))


def page_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every command in the pages' code blocks and inline code."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in code_blocks(text):
            found += [(name(page), argv) for argv in commands(block)]
        for span in inline_code(text):
            found += [(name(page), argv) for argv in commands(span)]
    return found


def motab_call(argv: list[str]) -> list[str] | None:
    """The arguments after `motab` (`python -m motab ...`, `motab ...`, `... -m motab ...`)."""
    if argv[0] in ("motab", "scripts/motab", "./scripts/motab"):
        return argv[1:]
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "motab":
            return argv[i + 2 :]
    return None


def flags(args: list[str]) -> list[str]:
    return sorted({arg.split("=", 1)[0] for arg in args if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", arg)})


@cache
def help_text(*argv: str) -> str:
    proc = subprocess.run([sys.executable, *argv, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} --help failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def has_option(help_: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_) is not None


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_is_a_front_door_of_at_most_200_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to a docs/ page"
    headings = [line for line in lines if line.startswith("## ")]
    for needed in ("What you need", "Quick start", "Run the tests", "SLURM", "Where results go",
                   "Troubleshooting", "How to cite"):  # fmt: skip
        assert any(needed in h for h in headings), f"README.md has no section on {needed!r}: {headings}"


def test_readme_test_command_is_what_ci_runs():
    readme = [argv for block in code_blocks((REPO / "README.md").read_text()) for argv in commands(block)]
    ci = [shlex.split(line) for line in (REPO / ".ci" / "run").read_text().splitlines()]
    pytest_cmd = [".venv/bin/python", "-m", "pytest"]
    assert pytest_cmd in readme and pytest_cmd in ci
    assert ["./scripts/bootstrap.sh"] in readme and ["bash", "scripts/bootstrap.sh"] in ci


def links() -> list[tuple[Path, str]]:
    found = []
    for page in LINKED:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        found += sorted({(page, target) for target in re.findall(r"\]\(([^)\s]+)\)", text)})
    return found


@pytest.mark.parametrize("page,target", links(), ids=lambda x: name(x) if isinstance(x, Path) else x)
def test_every_link_names_a_page_and_heading_that_exist(page, target):
    if re.match(r"[a-z]+:", target):
        return  # an outside address
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.relative_to(REPO)}: link to {target}: {dest.relative_to(REPO)} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), f"{page.relative_to(REPO)}: no heading #{anchor} in {path or page.name}"


def test_every_docs_page_is_in_the_index():
    index = (REPO / "docs" / "README.md").read_text()
    for page in sorted((REPO / "docs").glob("*.md")):
        assert page.name == "README.md" or f"({page.name})" in index, f"docs/README.md does not link {page.name}"


MOTAB_CALLS = sorted(
    {(page, " ".join(args)) for page, argv in page_commands() if (args := motab_call(argv)) is not None}
)


@pytest.mark.parametrize("page,call", MOTAB_CALLS)
def test_every_motab_command_and_flag_exists(page, call):
    args = call.split()
    top = help_text("-m", "motab")
    if not args or not re.fullmatch(r"-*[A-Za-z][\w-]*", args[0]):
        return  # `motab ...`, `motab <command>`: the program, no command named
    if args[0].startswith("-"):
        missing = [f for f in flags(args) if f != "--help" and not has_option(top, f)]
        assert not missing, f"{page}: `motab {call}`: {missing} not in motab --help"
        return
    assert re.search(rf"^\s+{re.escape(args[0])}\s", top, re.M), f"{page}: `motab {call}`: no command {args[0]!r}"
    own = help_text("-m", "motab", args[0])
    missing = [flag for flag in flags(args[1:]) if not has_option(own, flag)]
    assert not missing, f"{page}: `motab {call}`: motab {args[0]} has no {missing}"


SCRIPT_CALLS = sorted(
    {
        (page, shlex.join(argv[1:]))
        for page, argv in page_commands()
        if Path(argv[0]).name.startswith("python") and len(argv) > 1 and argv[1].endswith(".py")
    }
)


@pytest.mark.parametrize("page,call", SCRIPT_CALLS)
def test_every_python_script_and_flag_exists(page, call):
    script, *args = shlex.split(call)
    assert (REPO / script).is_file(), f"{page}: `python {call}`: no {script}"
    own = help_text(script)
    missing = [flag for flag in flags(args) if not has_option(own, flag)]
    assert not missing, f"{page}: `python {call}`: {script} has no {missing}"


def test_every_shell_script_a_page_runs_exists():
    for page, argv in page_commands():
        for word in argv[:2]:
            if word.endswith(".sh") and word.startswith(("scripts/", "./scripts/", "perf/")):
                assert (REPO / word).is_file(), f"{page}: {' '.join(argv)}: no {word}"


def snakemake_lines() -> list[str]:
    """The arguments of every `snakemake` command in the pages' code blocks, shell quotes removed."""
    found = set()
    for page in PAGES:
        for block in code_blocks(page.read_text()):
            found |= {" ".join(argv[1:]) for argv in commands(block) if Path(argv[0]).name == "snakemake"}
    return sorted(found)


def test_lines_run_by_other_tests_are_in_the_pages_and_those_tests_exist():
    lines = snakemake_lines()
    for line, node in RUN_BY_TEST.items():
        assert line in lines, f"RUN_BY_TEST: {line!r} is in no page any more; remove it"
        path, name = node.split("::")
        assert f"def {name}(" in (REPO / path).read_text(), f"RUN_BY_TEST: {node} does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("line", [line for line in snakemake_lines() if line not in RUN_BY_TEST])
def test_every_snakemake_line_dry_runs(line, tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path))  # `--profile slurm` as bootstrap.sh links it
    subprocess.run(["bash", "scripts/link_profiles.sh"], cwd=REPO, env=env, check=True, capture_output=True)
    args = line.split()  # as the shell passes them (quotes removed)
    if "--software-deployment-method" in args:
        methods = args[args.index("--software-deployment-method") + 1 :]
        absent = [m for m in DEPLOYMENT_TOOLS if m in methods and not any(map(shutil.which, DEPLOYMENT_TOOLS[m]))]
        if absent:  # Snakemake checks for them even in a dry run
            pytest.skip(
                f"{' and '.join(absent)} not on PATH (tests/test_conda_envs.py checks each rule's env and image)"
            )
    proc = subprocess.run(
        [SNAKEMAKE, *([] if "-n" in args else ["-n"]), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"snakemake -n {line}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Job stats:" in proc.stdout or "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_grading_example_prints_what_the_page_shows(tmp_path):
    page = (REPO / "docs" / "evaluation.md").read_text()
    block = next(b for b in code_blocks(page) if "motab grade --input" in b)
    script = "\n".join(line for line in block.replace("\\\n", " ").splitlines() if not line.startswith("#"))
    comments = [line.lstrip("# ") for line in block.splitlines() if line.startswith("#")]
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == comments[0], (proc.stdout, comments[0])
    shown = [json.loads(obj) for obj in re.findall(r"\{.*\}", "\n".join(comments[1:]))]
    written = [json.loads(line) for line in (tmp_path / "graded.jsonl").read_text().splitlines()]
    assert written == shown
