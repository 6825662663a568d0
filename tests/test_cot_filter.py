"""CoT filter on real GSM8K train solutions: kept against their own gold, altered copies dropped."""

import json

import pytest

from motab.jsonio import read_jsonl, write_jsonl
from motab.synthesis.cot_filter import filter_reason, max_ngram_count
from motab.synthesis.cot_filter import main as filter_main

N = 40


@pytest.fixture(scope="module")
def gsm8k(shared_data):
    rows = []
    with open(shared_data / "gsm8k" / "train.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append({"output": row["answer"], "gold": row["answer"].split("####")[-1].strip().replace(",", "")})
            if len(rows) == N:
                break
    return rows


def test_real_solutions_are_kept_against_their_own_gold(gsm8k):
    assert [filter_reason(r["output"], r["gold"]) for r in gsm8k] == ["kept"] * N


def test_altered_copies_are_dropped_for_the_right_reason(gsm8k):
    r = gsm8k[0]
    body, _, _ = r["output"].rpartition("####")
    assert (
        filter_reason(
            r["output"] + "\nAs an AI language model, I agree.", r["gold"], banned=["as an ai language model"]
        )
        == "banned_phrase"
    )
    loop = "so we add the two numbers and get the same result again "
    assert filter_reason(body + loop * 5 + "#### " + r["gold"], r["gold"]) == "repetition"
    assert filter_reason(body, r["gold"]) == "no_answer"
    assert filter_reason(r["output"], r["gold"], max_words=5) == "too_long"
    assert filter_reason(body + "#### " + str(int(r["gold"]) + 1), r["gold"]) == "wrong_answer"
    # the first applicable reason wins: banned before repetition before no answer
    assert filter_reason(body + loop * 5 + " forbidden", r["gold"], banned=["FORBIDDEN"]) == "banned_phrase"
    assert filter_reason(body + loop * 5, r["gold"]) == "repetition"


def test_ngram_count_boundary():
    assert max_ngram_count("a b a b a b", 2) == 3
    assert max_ngram_count("a b", 3) == 0
    assert filter_reason("x y " * 3 + "#### 1", "1", ngram=2, max_ngram_repeats=3) == "kept"
    assert filter_reason("x y " * 4 + "#### 1", "1", ngram=2, max_ngram_repeats=3) == "repetition"


def test_cli_writes_kept_rows_and_counts(gsm8k, tmp_path):
    problems, synth = [], []
    for i, r in enumerate(gsm8k[:6]):
        pid = f"g{i}"
        problems.append({"id": pid, "input": "q", "answer": r["gold"], "solution": None, "source": "gsm8k"})
        synth.append({"id": pid, "sample": 0, "input": "q", "output": r["output"]})
    body = gsm8k[0]["output"].rpartition("####")[0]
    synth += [
        {"id": "g0", "sample": 1, "input": "q", "output": body},
        {"id": "g1", "sample": 1, "input": "q", "output": gsm8k[0]["output"]},  # g0's answer for g1
        {"id": "g2", "sample": 1, "input": "q", "output": gsm8k[2]["output"] + " BAD WORD"},
    ]
    write_jsonl(tmp_path / "problems.jsonl", problems)
    write_jsonl(tmp_path / "synth.jsonl", synth)
    assert (
        filter_main(
            [
                "--input",
                str(tmp_path / "synth.jsonl"),
                "--gold",
                str(tmp_path / "problems.jsonl"),
                "--output",
                str(tmp_path / "kept.jsonl"),
                "--counts",
                str(tmp_path / "counts.json"),
                "--banned",
                "bad word",
            ]
        )
        == 0
    )
    kept = read_jsonl(tmp_path / "kept.jsonl")
    assert kept == synth[:6]
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["total"] == 9 and counts["kept"] == 6
    assert counts["dropped"] == {"banned_phrase": 1, "repetition": 0, "no_answer": 1, "too_long": 0, "wrong_answer": 1}


# --------------------------------------------------------------------------- mode seed
# Rules of ShiboJin/CIS5300-Final-Project @ fa67766c, extension1/filter-teacher-cot.py, checked on
# rows written here (the seed's own outputs cannot be committed).

SEED_BANNED = ["let me", "okay", "hmm"]


def seed_filter(rows, gold, **kw):
    from motab.synthesis.cot_filter import filter_rows

    return filter_rows(
        rows,
        gold,
        SEED_BANNED,
        kw.get("max_words", 250),
        3,
        kw.get("ngram", 3),
        mode="seed",
        repetition_check=kw.get("repetition_check", False),
    )


def test_seed_mode_follows_filter_teacher_cot():
    gold = {f"r{i}": "18" for i in range(9)} | {"g": "1,200", "nogold": ""}
    rows = [
        {"id": "r0", "output": "3 + 15 = 18\n#### 18"},  # kept
        {"id": "r1", "output": "   \n"},  # empty
        {"id": "r2", "output": "Okay, 3 + 15 = 18\n#### 18"},  # banned, in the CoT
        {"id": "r3", "output": "3 + 15 = 18\n#### 18\nhmm"},  # banned text after the last #### is not CoT
        {"id": "r4", "output": "3 + 15 = 18. The answer is \\boxed{18}."},  # no "#### x": dropped
        {"id": "r5", "output": "#### 17\n3 + 15 = 18\n#### 18"},  # the FIRST #### answer counts
        {"id": "r6", "output": "3 + 15 = 18\n#### 18.0"},  # "18.0" vs "18": mismatch (the seed's)
        {"id": "r7", "output": "3 + 15 = 18\n#### eighteen"},  # no number: kept
        {"id": "r8", "output": " ".join(["w"] * 251) + "\n#### 18"},  # > 250 words
        {"id": "g", "output": "so $1,200\n#### $1,200"},  # commas and $ dropped
        {"id": "nogold", "output": "no hash at all"},  # gold empty: not checked
    ]
    kept, counts = seed_filter(rows, gold)
    assert [r["id"] for r in kept] == ["r0", "r3", "r7", "g", "nogold"]
    assert counts["dropped"] == {
        "empty": 1,
        "banned_phrase": 1,
        "repetition": 0,
        "no_answer": 1,
        "too_long": 1,
        "wrong_answer": 2,
    }


def test_seed_mode_repetition_is_a_switch():
    rows = [{"id": "a", "output": "a b c a b c a b c a b c a b c\n#### 18"}]
    assert len(seed_filter(rows, {"a": "18"})[0]) == 1
    kept, counts = seed_filter(rows, {"a": "18"}, repetition_check=True)
    assert not kept and counts["dropped"]["repetition"] == 1
