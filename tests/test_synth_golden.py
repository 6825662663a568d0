"""Golden test: our MOTAB, SKD and teacher-only synthesis, in `compat: released` mode, write the
same rows as the MOTAB release's own scripts, greedy, on toy models served by the embedded server.

How tests/fixtures/synth_golden.jsonl was made (once; the scripts' code is not in this repo):
- wangbing1416/MOTAB at commit 415a5f0943b0fdc95d9c49c9762efd7ef8c01e2f: 1-generate-ours.py,
  2-generate-baseline.py and 3-generate-teacher-only.py copied unchanged to /tmp.
- Models and problems: tests/golden_models.py (build_pair, problems(10)); the input file held
  {"id", "input"} of those problems. Each model served by `python -m motab serve` (this repo's
  embedded server, at the commit that added this test).
- Each script run with only its CLI arguments set: --teacher_url/--student_url (the servers'
  /generate), --teacher_model_path <teacher dir>, --num_responses 1, --temperature 0,
  --max_step_tokens 24, --max_total_tokens 64, --num_workers 1, --batch_size 10; 1-generate-ours.py
  twice, with the default --epsilon0 0.2 (case "motab") and with --epsilon0 1e-9 ("motab_eps1e-9",
  where steps are also accepted and t* > 0 occurs); theta 1.0, top_k_entropy 20 and gamma 0.9
  are the scripts' defaults.
- From each output row's responses[0] the fixture keeps: MOTAB sft_text, breach_detected,
  bifurcation_step, total_tokens (student tokens), the steps' oracle_value and adaptive_boundary,
  and len(teacher_correction_logprobs); SKD / teacher-only response, total_tokens and each step's
  source and finish_type. sha256 of the scripts' full outputs: motab 88fba767..., motab_eps1e-9
  e11873f3..., skd 8b4f4072..., teacher_only 4365e4ab....
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from motab.jsonio import read_jsonl, write_jsonl
from motab.serving.launch import LOCAL_SERVER, serving
from motab.synthesis.run import main as synth_main

sys.path.insert(0, str(Path(__file__).parent))
import golden_models

FIXTURE = Path(__file__).parent / "fixtures" / "synth_golden.jsonl"
COMMON = {"seed": 0, "num_responses": 1, "temperature": 0.0, "compat": "released"}
CASES = {
    "motab": (
        "motab",
        COMMON | {"epsilon0": 0.2, "theta": 1.0, "top_k_entropy": 20, "max_step_tokens": 24, "max_total_tokens": 64},
    ),
    "motab_eps1e-9": (
        "motab",
        COMMON | {"epsilon0": 1e-9, "theta": 1.0, "top_k_entropy": 20, "max_step_tokens": 24, "max_total_tokens": 64},
    ),
    "skd": ("skd", COMMON | {"gamma": 0.9, "max_step_tokens": 24, "max_total_tokens": 64}),
    "teacher_only": ("teacher_only", COMMON | {"stepwise": True, "max_step_tokens": 24, "max_total_tokens": 64}),
}


@pytest.fixture(scope="module")
def golden_servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    teacher, student = golden_models.build_pair(root / "models")
    problems = root / "problems.jsonl"
    write_jsonl(problems, golden_models.problems(10))
    with (
        serving(LOCAL_SERVER, str(teacher), root / "t.log") as turl,
        serving(LOCAL_SERVER, str(student), root / "s.log") as surl,
    ):
        yield {"root": root, "teacher": teacher, "student": student, "problems": problems, "turl": turl, "surl": surl}


def expected(case: str) -> dict[str, dict]:
    return {row["id"]: row for row in read_jsonl(FIXTURE) if row["case"] == case}


@pytest.mark.parametrize("case", sorted(CASES))
def test_released_mode_writes_the_release_scripts_rows(golden_servers, case):
    method, params = CASES[case]
    g = golden_servers
    out = g["root"] / f"{case}.jsonl"
    argv = [
        "--method",
        method,
        "--problems",
        str(g["problems"]),
        "--teacher",
        str(g["teacher"]),
        "--output",
        str(out),
        "--params-json",
        json.dumps(params),
        "--server-url",
        g["turl"],
    ]
    if method != "teacher_only":
        argv += ["--student", str(g["student"]), "--student-url", g["surl"]]
    assert synth_main(argv) == 0
    rows = {row["id"]: row for row in read_jsonl(out)}
    want = expected(case)
    assert len(want) >= 10 and sorted(rows) == sorted(want)
    for pid, ref in want.items():
        row = rows[pid]
        assert row["output"] == ref["output"], pid
        stats = row["stats"]
        if method == "motab":
            assert (stats["breach"], stats["bifurcation_step"]) == (ref["breach"], ref["bifurcation_step"]), pid
            assert stats["student_tokens"] == ref["student_tokens"], pid
            assert stats["teacher_tokens"] == ref["teacher_tokens"], pid
            assert stats["step_oracle"] == pytest.approx(ref["step_oracle"], abs=2e-8), pid
            assert stats["step_boundary"] == ref["step_boundary"], pid
        else:
            assert stats["step_source"] == ref["step_source"], pid
            assert stats["step_finish"] == ref["step_finish"], pid
            assert stats["teacher_tokens"] + stats["student_tokens"] == ref["total_tokens"], pid


def synth(g, case_name: str, method: str, params: dict) -> list[dict]:
    out = g["root"] / f"{case_name}.jsonl"
    argv = [
        "--method",
        method,
        "--problems",
        str(g["problems"]),
        "--teacher",
        str(g["teacher"]),
        "--output",
        str(out),
        "--params-json",
        json.dumps(params),
        "--server-url",
        g["turl"],
    ]
    if method != "teacher_only":
        argv += ["--student", str(g["student"]), "--student-url", g["surl"]]
    assert synth_main(argv) == 0
    return read_jsonl(out)


def test_paper_mode_fixes_the_released_quirks(golden_servers):
    """compat: paper on the same models and contexts: a step that stopped on ".\n\n" keeps its
    "."; every scored token counts (released: the first is read as p = 1); the entropy is the top-k
    one (released: ~0, so the boundary is always epsilon0); EOS ends a trajectory (released rows go
    on past it); the prompt is the chat template (another text)."""
    import asyncio

    from transformers import AutoTokenizer

    from motab.serving.client import ServerClient
    from motab.synthesis.steps import (
        STEP_STOP,
        Compat,
        generate_steps,
        score_steps,
        teacher_entropies,
    )

    g = golden_servers
    tok = AutoTokenizer.from_pretrained(g["teacher"])
    questions = [p["input"] for p in golden_models.problems(10)]

    async def both():
        async with ServerClient(g["turl"]) as client:
            out = {}
            for mode in ("released", "paper"):
                compat = Compat(mode)
                steps = await generate_steps(client, questions, [24] * 10, 0.0, list(range(10)), STEP_STOP, compat)
                scores = await score_steps(client, tok, questions, [s.text or "x" for s in steps], compat)
                out[mode] = (steps, scores, await teacher_entropies(client, questions, 20, compat))
            return out

    got = asyncio.run(both())
    (rel_steps, rel_scores, rel_h), (pap_steps, pap_scores, pap_h) = got["released"], got["paper"]
    stopped = [k for k, s in enumerate(rel_steps) if s.finish_type == "stop" and not s.hit_eos]
    assert stopped
    for k in range(10):
        want = rel_steps[k].text + "." if k in stopped else rel_steps[k].text
        assert pap_steps[k].text == want
    assert all(sc[0] == 0.0 for sc in rel_scores) and all(pap[0] < 0.0 for pap in pap_scores)
    assert all(abs(h) < 1e-9 for h in rel_h) and all(h > 1e-6 for h in pap_h)

    ours_released = synth(g, "teacher_only_released", "teacher_only", CASES["teacher_only"][1])
    assert any(True in row["stats"]["step_eos"][:-1] for row in ours_released)  # went on past an EOS
    paper = synth(g, "teacher_only_paper", "teacher_only", CASES["teacher_only"][1] | {"compat": "paper"})
    assert all(True not in row["stats"]["step_eos"][:-1] for row in paper)
    released = {r["id"]: r for r in ours_released}
    assert any(row["output"] != released[row["id"]]["output"] for row in paper)
