"""The toy reasoning task: multi-step integer arithmetic with a step-by-step solution.

Rows are written in LIMO's raw shape (question, solution, answer) so the same `prepare` stage
reads them as it reads LIMO. Each step of the solution is one line followed by a blank line,
the step boundary MOTAB uses; the last line states the answer as \\boxed{N}.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from motab.commandline import command_parser
from motab.jsonio import write_jsonl


@dataclass(frozen=True)
class TaskSpec:
    num_ops: int = 2  # operations per problem (steps in the solution)
    min_operand: int = 10
    max_operand: int = 99


def _one_problem(spec: TaskSpec, rng: random.Random) -> tuple[str, str, int]:
    value = rng.randint(spec.min_operand, spec.max_operand)
    expression, steps = str(value), []
    for _ in range(spec.num_ops):
        operand = rng.randint(spec.min_operand, spec.max_operand)
        # Subtract only what keeps the running value non-negative: answers stay plain integers.
        op = "-" if operand <= value and rng.random() < 0.5 else "+"
        result = value + operand if op == "+" else value - operand
        steps.append(f"{value} {op} {operand} = {result}.")
        expression += f" {op} {operand}"
        value = result
    solution = "\n\n".join(steps + [f"The answer is \\boxed{{{value}}}."])
    return f"Compute {expression}.", solution, value


def generate_problems(
    spec: TaskSpec, n: int, seed: int, exclude: set[str] | None = None, prefix: str = "toy"
) -> list[dict]:
    """n distinct problems; questions in `exclude` (another split) are never produced."""
    rng = random.Random(seed)
    seen = set(exclude or ())
    rows: list[dict] = []
    misses = 0
    while len(rows) < n:
        question, solution, answer = _one_problem(spec, rng)
        if question in seen:
            misses += 1
            if misses > 100 * n + 10_000:  # the task has fewer distinct problems than asked for
                raise ValueError(
                    f"asked for {n} distinct problems but found only {len(rows)} with {spec}; "
                    "widen the operand range or ask for fewer"
                )
            continue
        seen.add(question)
        rows.append(
            {"id": f"{prefix}-{len(rows):05d}", "question": question, "solution": solution, "answer": str(answer)}
        )
    return rows


def main(argv: list[str]) -> int:
    parser = command_parser(
        "toy-problems",
        __doc__,
        "motab toy-problems --num-train 300 --num-test 16 --seed 0 --train-output results/toy/raw/train.jsonl --test-output results/toy/raw/test.jsonl",
    )
    parser.add_argument("--num-train", type=int, required=True)
    parser.add_argument("--num-test", type=int, required=True)
    parser.add_argument("--num-ops", type=int, default=TaskSpec.num_ops)
    parser.add_argument("--min-operand", type=int, default=TaskSpec.min_operand)
    parser.add_argument("--max-operand", type=int, default=TaskSpec.max_operand)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--train-output", required=True)
    parser.add_argument("--test-output", required=True)
    args = parser.parse_args(argv)
    spec = TaskSpec(args.num_ops, args.min_operand, args.max_operand)
    # The test split is drawn first so changing the train size never changes the test set.
    test = generate_problems(spec, args.num_test, seed=args.seed + 1, prefix="toytest")
    train = generate_problems(
        spec, args.num_train, seed=args.seed, exclude={r["question"] for r in test}, prefix="toytrain"
    )
    write_jsonl(args.train_output, train)
    write_jsonl(args.test_output, test)
    print(f"{len(train)} train and {len(test)} test problems")
    return 0
