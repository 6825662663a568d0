"""The data card of a synthesized dataset: right-answer share, authorship, step decisions and the
rows' lengths against the SFT cutoff and the eval budget, with a warning when a budget cuts rows."""

import json
from pathlib import Path

from transformers import AutoTokenizer

from motab.jsonio import write_jsonl
from motab.plan import Study, card_budgets, compose, workflow_config
from motab.plan.targets import data_cards
from motab.synthesis.card import data_card, length_summary, main, to_markdown

REPO = Path(__file__).resolve().parents[1]


def _row(pid, output, teacher, student, **stats):
    return {
        "id": pid,
        "sample": 0,
        "input": "Compute 1 + 2.",
        "output": output,
        "stats": {"teacher_tokens": teacher, "student_tokens": student} | stats,
    }


def words(text):
    return text.split()


MOTAB_ROWS = [
    # a breached row: the student's step, "However,", the teacher's rest
    _row(
        "a",
        "1 + 2 = 4.\n\nHowever,\n\n1 + 2 = 3. The answer is \\boxed{3}.",
        9,
        5,
        accepted_steps=0,
        rejected_steps=1,
        breach=True,
        bifurcation_step=0,
        finish="eos",
    ),
    _row(
        "b",
        "2 + 2 = 4. The answer is \\boxed{4}.",
        0,
        8,
        accepted_steps=2,
        rejected_steps=0,
        breach=False,
        bifurcation_step=None,
        finish="eos",
    ),
    _row(
        "c",
        "5 + 1 = 6. The answer is \\boxed{7}.",
        0,
        8,
        accepted_steps=1,
        rejected_steps=0,
        breach=False,
        bifurcation_step=None,
        finish="context",
    ),
]
GOLD = {"a": "3", "b": "4", "c": "6"}


def test_card_counts_right_answers_authorship_and_motab_breaches():
    card = data_card(MOTAB_ROWS, GOLD, words, cutoff_len=100, eval_max_tokens=100)
    assert card["rows"] == 3 and card["share_right"] == round(2 / 3, 6)
    assert card["teacher_share"] == round(9 / 30, 6)
    assert card["steps"]["accepted_student_steps"] == 3 and card["steps"]["rejected_student_steps"] == 1
    assert card["steps"]["acceptance"] == 0.75 and card["steps"]["breach_rows"] == 1
    assert card["finish"] == {"context": 1, "eos": 2}
    assert card["warnings"] == []


def test_a_budget_that_cuts_rows_is_warned_about():
    # responses of 15, 9 and 9 words (prompt: 4 more): budgets of 10 and 14 each cut the breached row
    card = data_card(MOTAB_ROWS, GOLD, words, cutoff_len=14, eval_max_tokens=10)
    assert card["response_tokens"] == {"median": 9, "p90": 15, "max": 15}
    assert card["rows_over_budget"] == {"eval_max_tokens": 1, "sft_cutoff_len": 1}
    assert card["warnings"][0].startswith("eval max_tokens 10 is shorter than 1 of 3 responses")
    assert "cutoff_len 14 truncates 1 of 3 rows" in card["warnings"][1]
    assert "**Warning:** eval max_tokens 10" in to_markdown(card, "motab")


def test_length_summary_is_nearest_rank():
    assert length_summary(list(range(1, 11))) == {"median": 5.5, "p90": 9, "max": 10}
    assert length_summary([]) == {"median": None, "p90": None, "max": None}


def test_command_measures_lengths_in_the_students_tokens(tiny_model_dir, tmp_path, capsys):
    rows, problems = tmp_path / "motab.jsonl", tmp_path / "problems.jsonl"
    write_jsonl(rows, MOTAB_ROWS)
    write_jsonl(problems, [{"id": k, "input": "q", "answer": v} for k, v in GOLD.items()])
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    longest = max(len(tok.encode(r["output"], add_special_tokens=False)) for r in MOTAB_ROWS)
    argv = ["--rows", str(rows), "--problems", str(problems), "--tokenizer", str(tiny_model_dir)]
    argv += ["--eval-max-tokens", str(longest - 1), "--json", str(tmp_path / "c.json"), "--md", str(tmp_path / "c.md")]
    assert main(argv) == 0
    card = json.loads((tmp_path / "c.json").read_text())
    assert card["response_tokens"]["max"] == longest and card["rows_over_budget"]["eval_max_tokens"] >= 1
    assert "warning: motab.jsonl: eval max_tokens" in capsys.readouterr().out
    assert (tmp_path / "c.md").read_text().startswith("# Data card: motab")


def test_toy_study_cards_every_synthesized_dataset_of_its_table():
    study = Study.of(compose(workflow_config(REPO), REPO), "toy")
    assert data_cards(study) == [
        f"results/toy/synth/{name}.card.json"
        for name in (
            "motab",
            "motab_paper",
            "skd_gamma0p8",
            "skd_gamma0p9",
            "skd_paper",
            "teacher_only",
            "teacher_only.filtered",
        )
    ]
    assert card_budgets(study) == {"cutoff_len": 256, "eval_max_tokens": 96}
