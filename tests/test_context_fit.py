"""Eval max_tokens within the served model's context (models.<name>.context_length)."""

from motab.evaluation.settings import context_notes, fit_to_context

EVAL = {"benchmarks": ["aime24"], "n": 8, "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "batch_problems": 64}


def test_max_tokens_is_capped_below_the_context_and_kept_where_it_fits():
    settings = {"max_tokens": 32768}
    assert fit_to_context(settings, 32768)["max_tokens"] == 32768 - 2048
    assert fit_to_context(settings, 40960)["max_tokens"] == 32768
    assert fit_to_context(settings, None) == settings
    assert fit_to_context(settings, 32768, prompt_tokens=512)["max_tokens"] == 32256


def test_the_plan_says_which_model_caps_the_eval():
    models = {"Qwen2-7B": {"context_length": 32768}, "Qwen3-4B": {"context_length": 40960}}
    notes = context_notes("motab", EVAL, models, {"a": "Qwen2-7B", "b": "Qwen3-4B"})
    assert len(notes) == 1
    assert "models.Qwen2-7B.context_length 32768" in notes[0] and "at most 30720" in notes[0]
    assert context_notes("motab", EVAL | {"prompt_tokens": 0}, models, {"a": "Qwen2-7B"}) == []
