"""Grading: read a response's final answer and decide whether it equals the gold answer.

extraction       the final answer of a response (pure string functions, modes such as `strict`)
equivalence      whether two answers are equal (math-verify), in worker processes under a timeout
multiple_choice  the letter grader of multiple-choice benchmarks (GPQA-Diamond)
grade_command    `motab grade`: grade any {id, response, gold} JSONL file

Synthesis (filtering trajectories by their answers) and evaluation (`motab eval-grade`) both read
this layer; it reads neither of them.
"""
