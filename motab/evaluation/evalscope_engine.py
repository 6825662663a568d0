"""`motab eval-evalscope`: sample through EvalScope against the server's OpenAI endpoint.

    motab eval-evalscope --model DIR --benchmark-file ../shared/data/math500/test.jsonl
        --format math500 --name math500 --dataset math_500 --output seed0.responses.jsonl
        --work-dir results/<study>/eval/<run>/math500/seed0.evalscope
        --n 4 --temperature 0.6 --top-p 1.0 --max-tokens 128 --seed 0 [--limit N]
        [--server-command TEMPLATE | --server-url URL]
    motab eval-evalscope --model DIR --jobs-json '[{"benchmark_file": ..., "format": ...,
        "name": ..., "dataset": ..., "output": ..., "work_dir": ..., "n": 8, "top_k": 20, ...}, ...]'

--jobs-json runs several (benchmark, seed) jobs, each with its own files, dataset_args and
sampling, against ONE server start: a run's whole eval in one SLURM job (eval_evalscope_run_<study>).

EvalScope (the `evalscope` engine of a study's eval) runs its own TaskConfig: eval_type
"openai_api" with api_url = <server>/v1, the benchmark's EvalScope name with dataset_args
{"dataset_id": <the folder holding the benchmark's file, or its Hugging Face hub id, read with
dataset_hub "huggingface": hub_source>}, or {"local_path": <the download step's snapshot folder>,
"eval_split": <config split>} for a hub benchmark in the hub cache (snapshot_source; EvalScope 1.14
reads an existing path as a local dataset through `datasets.load_dataset(folder, split="test")`,
so the folder must hold the benchmark as test.jsonl; a direct file path is not accepted) and the
sampling values from config. The n samples per problem are n EvalScope runs (work_dir/sample<i>/),
each with its own seed derived from (seed, i): EvalScope's `repeats` sends one seed with every
repeat, which a seeded server (SGLang, the embedded one) answers with n identical samples.
Each run's TaskConfig is written as JSON into its folder (task_config.json), so a user can rerun
EvalScope by hand. The per-sample reviews (sample<i>/reviews/<model>/<dataset>_*.jsonl) are
converted into the native responses file ({"id", "input", "gold", "prompt", "responses",
"finish_reasons", "completion_tokens"}, plus EvalScope's own per-sample score and extracted
answer under "evalscope"), matched to the benchmark's problems (read and checked by the same
loader as the native engine's, motab.data.benchmarks) by their text (motab.evaluation.evalscope_reviews);
`eval-grade` then writes the same eval JSON as the native engine, graded by the same grader.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from motab.commandline import command_parser
from motab.evaluation.evalscope_reviews import read_reviews, review_files, to_responses
from motab.jsonio import write_json, write_jsonl

SERVED_MODEL = "motab-model"  # the model name of a TaskConfig built without a server at hand


def served_model(url: str) -> str:
    """The model name the server serves (GET /v1/models): SGLang, vLLM and the embedded server refuse
    any other. SERVED_MODEL when the server does not say."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/models", timeout=60) as resp:
            return str(json.loads(resp.read())["data"][0]["id"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, urllib.error.URLError):
        return SERVED_MODEL


def _log(message: str) -> None:
    print(f"[eval-evalscope] {message}", file=sys.stderr, flush=True)


def task_config_dict(
    url: str,
    dataset: str,
    dataset_dir: str,
    work_dir: str,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    limit: int | None,
    batch_size: int,
    model: str = SERVED_MODEL,
    timeout_s: float = 3600.0,
    extra_args: dict | None = None,
    top_k: int | None = None,
) -> dict:
    """The TaskConfig fields of one EvalScope run (one sample per problem): plain JSON values.
    top_k enters generation_config only when given (the MOTAB release sets it for some datasets)."""
    config = {
        "model": model,
        "eval_type": "openai_api",
        "api_url": url.rstrip("/") + "/v1",
        "api_key": "EMPTY",
        "datasets": [dataset],
        # dataset_dir None: EvalScope's own copy of the benchmark (its default dataset_id)
        "dataset_args": {dataset: ({"dataset_id": dataset_dir} if dataset_dir else {}) | (extra_args or {})},
        "repeats": 1,
        # top_k and the rest stated too: SGLang's chat endpoint fills left-out keys from the model's
        # generation_config.json (EvalScope sends top_k and extra_body to an OpenAI server as extras)
        "generation_config": {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": -1,
            "max_tokens": max_tokens,
            "seed": seed,
            "n": 1,
            "extra_body": {"min_p": 0.0, "repetition_penalty": 1.0},
        },
        "seed": seed,
        "limit": limit,
        "eval_batch_size": batch_size,
        "work_dir": str(work_dir),
        "no_timestamp": True,
        "timeout": timeout_s,
    }
    if top_k is not None:
        config["generation_config"]["top_k"] = top_k
    return config


def repeat_seed(seed: int, repeat: int) -> int:
    """The sampling seed of EvalScope run `repeat` (EvalScope sends one seed for all its repeats,
    which a seeded server answers with n identical samples; one run per sample avoids that)."""
    digest = hashlib.sha256(f"{seed}\x00repeat{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def run_evalscope(config: dict) -> None:
    from evalscope import TaskConfig, run_task

    run_task(task_cfg=TaskConfig(**config))


# What one EvalScope job states (its benchmark, files and sampling); --jobs-json lists several,
# all against ONE server start (a run's benchmarks x seeds in one SLURM job).
JOB_KEYS = (
    "benchmark_file",
    "format",
    "name",
    "dataset",
    "output",
    "work_dir",
    "split",
    "limit",
    "dataset_args",
    "n",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "seed",
    "batch_size",
)
JOB_REQUIRED = ("benchmark_file", "format", "name", "dataset", "output", "work_dir")


def build_parser() -> argparse.ArgumentParser:
    from motab.serving.launch import LOCAL_SERVER, STARTUP_TIMEOUT_S

    parser = command_parser(
        "eval-evalscope",
        __doc__.split("\n\n")[0],
        "motab eval-evalscope --model Qwen/Qwen3-8B --benchmark-file aime24.jsonl --format generic --output seed0.responses.jsonl --server-url http://127.0.0.1:30000",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or hub id (served by the server)")
    parser.add_argument("--benchmark-file", help="the benchmark's JSONL file, or a hub id")
    parser.add_argument("--format", help="its format (motab.data.benchmarks)")
    parser.add_argument("--name", help="the benchmark's name in config")
    parser.add_argument("--dataset", help="EvalScope benchmark name, e.g. math_500")
    parser.add_argument("--output", help="responses.jsonl (the native engine's form)")
    parser.add_argument("--work-dir", help="EvalScope's work_dir (task config, reviews, report)")
    parser.add_argument(
        "--jobs-json",
        default=None,
        help="instead of the six flags above: a JSON list of {benchmark_file, format, name, dataset, "
        "output, work_dir, and any of split, limit, dataset_args and the sampling keys}, all on "
        "one server (unset keys take the flags' values)",
    )
    parser.add_argument("--n", type=int, default=1, help="samples per problem (EvalScope repeats)")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=None, help="top-k sampling (unset: not sent)")
    parser.add_argument("--split", default="test", help="hub split of --benchmark-file when it is a hub id")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="first N problems of the dataset (0 = all)")
    parser.add_argument(
        "--dataset-args",
        default="{}",
        help='more dataset_args as JSON, e.g. {"subset_list": ["default"]} for a local GSM8K folder',
    )
    parser.add_argument("--batch-size", type=int, default=4, help="EvalScope's concurrent requests")
    parser.add_argument("--server-command", default=LOCAL_SERVER)
    parser.add_argument("--server-log", default=None)
    parser.add_argument(
        "--placement", default=None, help="the job GPUs each server sees (role model), JSON of motab.serving.placement"
    )
    parser.add_argument("--server-url", default=None, help="use this running server instead of starting one")
    parser.add_argument(
        "--server-startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help="seconds to wait for each server to become healthy (studies' resources.<stage>.server_startup_s)",
    )
    return parser


def _dataset_args(value) -> dict:
    """A job's extra dataset_args: a JSON object (the flag's string, or already parsed from --jobs-json)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--dataset-args: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise TypeError("--dataset-args: expected a JSON object")
    return value


def _jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[argparse.Namespace]:
    """The jobs to run: those of --jobs-json, or the one the flags state; each checked."""
    from motab.evaluation.jobs import parse_jobs

    flags = ["--" + key.replace("_", "-") for key in JOB_REQUIRED]
    try:
        if args.jobs_json:
            if any(getattr(args, key) for key in JOB_REQUIRED):
                parser.error(f"give --jobs-json or {'/'.join(flags)}, not both")
            jobs = parse_jobs(args.jobs_json, args, JOB_KEYS, JOB_REQUIRED)
        elif not all(getattr(args, key) for key in JOB_REQUIRED):
            parser.error(f"{', '.join(flags)} are required (or --jobs-json)")
        else:
            jobs = [args]
        from motab.hublock import resolve

        for job in jobs:
            job.benchmark_file = resolve(job.benchmark_file)  # an unpinned benchmark's lock: its snapshot
            job.dataset_args = _dataset_args(job.dataset_args)
            if job.n < 1:
                raise ValueError(f"--n must be at least 1, found {job.n}")
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    return jobs


def local_problems(job: argparse.Namespace) -> list[dict] | None:
    """The problems of a job's local benchmark file or hub snapshot (read and checked before the
    server starts); None for a hub id, which EvalScope downloads first."""
    from motab.data.benchmarks import load_benchmark
    from motab.data.prepare import load_hub_dataset

    if is_snapshot(job.benchmark_file):
        return load_benchmark(load_hub_dataset(job.benchmark_file, split=job.split), job.format, job.name)
    return load_benchmark(job.benchmark_file, job.format, job.name) if Path(job.benchmark_file).is_file() else None


def hub_source(benchmark_file: str, dataset_args: dict) -> tuple[dict, dict]:
    """(TaskConfig fields, dataset_args) that make EvalScope read a Hugging Face hub id, the rows our
    loader reads: `dataset_hub: huggingface` (EvalScope's default hub is ModelScope, and it drops its
    own Hugging Face mapping once dataset_id differs from its ModelScope id), and "id:config" as the
    id with subset_list [config] (e.g. Idavidrein/gpqa:gpqa_diamond, the gated GPQA set)."""
    hub_id, _, subset = benchmark_file.partition(":")
    # hf_dataset_id too: EvalScope then reads this id on the Hugging Face hub as its own mapping
    extra = {"dataset_id": hub_id, "hf_dataset_id": hub_id} | ({"subset_list": [subset]} if subset else {})
    return {"dataset_hub": "huggingface"}, extra | dataset_args


def snapshot_source(location: str, split: str, dataset_args: dict, work_dir: Path) -> dict:
    """dataset_args that make EvalScope read a hub snapshot folder of the download step (hub cache),
    offline: `local_path` (EvalScope's local mirror, which replaces its own hub ids), the config's
    split, and the snapshot's configuration as the only subset (it wins over a subset_list in config,
    which names a local file's "default")."""
    from motab.data.prepare import split_subset

    folder, subset = split_subset(location)
    extra = {"local_path": _evalscope_view(Path(folder), work_dir), "eval_split": split}
    return dataset_args | extra | ({"subset_list": [subset]} if subset else {})


def _evalscope_view(snapshot: Path, work_dir: Path) -> str:
    """The folder EvalScope is given: the snapshot itself, or links to its files less a
    dataset_infos.json, which EvalScope deletes from a local folder (the shared cache's file)."""
    if not (snapshot / "dataset_infos.json").exists():
        return str(snapshot)
    view = work_dir / "dataset"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for item in sorted(snapshot.iterdir()):
        if item.name != "dataset_infos.json":
            (view / item.name).symlink_to(item.resolve())
    return str(view)


def is_snapshot(location: str) -> bool:
    """A folder (with `:config`) of the hub cache, as the download step gives a job."""
    from motab.data.prepare import split_subset

    return Path(split_subset(location)[0]).is_dir()


def job_task_config(url: str, job: argparse.Namespace, repeat: int, run_dir: Path, model: str = SERVED_MODEL) -> dict:
    """The TaskConfig fields of sample `repeat` of a job: a local benchmark file is read from its
    folder; a hub snapshot folder as EvalScope's local mirror (snapshot_source); a hub id from the
    Hugging Face hub (hub_source). `model`: the name the server serves."""
    local = Path(job.benchmark_file).is_file()
    if is_snapshot(job.benchmark_file):
        hub, dataset_args = {}, snapshot_source(job.benchmark_file, job.split, job.dataset_args, run_dir)
    elif local:
        hub, dataset_args = {}, job.dataset_args
    else:
        hub, dataset_args = hub_source(job.benchmark_file, job.dataset_args)
    config = task_config_dict(
        url,
        job.dataset,
        str(Path(job.benchmark_file).resolve().parent) if local else None,
        str(run_dir),
        job.temperature,
        job.top_p,
        job.max_tokens,
        repeat_seed(job.seed, repeat),
        job.limit or None,
        job.batch_size,
        extra_args=dataset_args,
        model=model,
        top_k=job.top_k,
    )
    return config | hub


def run_job(url: str, job: argparse.Namespace, problems: list[dict] | None) -> None:
    """One benchmark at one seed: n EvalScope runs against the server, converted into job.output."""
    t0 = time.perf_counter()
    work_dir = Path(job.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(work_dir.glob("sample*")):  # a rerun never mixes old samples in
        shutil.rmtree(stale)
    reviews = []
    model = served_model(url)
    for repeat in range(job.n):
        run_dir = work_dir / f"sample{repeat}"
        config = job_task_config(url, job, repeat, run_dir, model)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "task_config.json", config)
        args = config["dataset_args"][job.dataset]
        source = args.get("local_path") or args.get("dataset_id", "its own copy")
        _log(
            f"server at {url}; EvalScope {job.dataset} from {source} ({config.get('dataset_hub', 'local')}), "
            f"sample {repeat + 1}/{job.n} (seed {config['seed']})"
        )
        run_evalscope(config)
        reviews += read_reviews(review_files(run_dir, job.dataset), repeat)
    if problems is None:  # a hub id: EvalScope downloaded it; our loader reads the same rows
        from motab.data.benchmarks import load_benchmark
        from motab.data.prepare import load_hub_dataset

        problems = load_benchmark(load_hub_dataset(job.benchmark_file, split=job.split), job.format, job.name)
    rows = to_responses(reviews, problems, job.n)
    write_jsonl(job.output, rows)
    _log(f"wrote {job.output} ({len(rows)} problems x {job.n}) in {time.perf_counter() - t0:.1f} s")


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    jobs = _jobs(parser, args)

    from motab.serving.launch import server_or_url

    _log("command: motab eval-evalscope " + shlex.join(argv))
    t0 = time.perf_counter()
    problems = [local_problems(job) for job in jobs]
    log_path = args.server_log or str(jobs[0].output) + ".server.log"
    context = server_or_url(
        args.server_url, args.server_command, args.model, log_path, args.server_startup_timeout, args.placement
    )
    with context as url:
        _log(f"server at {url} ready after {time.perf_counter() - t0:.1f} s; {len(jobs)} job(s) on it")
        for job, own in zip(jobs, problems):
            run_job(url, job, own)
    _log(f"{len(jobs)} job(s) in {time.perf_counter() - t0:.1f} s total")
    return 0
