"""What one candidate evaluation costs, phase by phase, and what a search-time latency could cost instead.

Uses the embedded default: the BERT super-network built from all-MiniLM-L6-v2, the config's sentence data
(1000 validation sentences at 64 tokens, 64 calibration samples), its space (config/spaces/minilm.yaml)
and the `local` host profile (warm-up, runs, trim). Sections (`--sections`, default all):

  cost     phases (extract, size, quantize + calibrate, accuracy, compile, latency) of the smallest and the
           largest sub-network of the space, all-INT8, each evaluated twice in one process (the first pays
           one-time costs); plus, on the largest, the QDQ-vs-compiled accuracy check (same predictions?)
           and INC's strict export against our non-strict one (same graph? how much faster?)
  jobs     each job kind of a search iteration, as the workflow runs it (a fresh process reading the job's
           files, an empty store) over the same `--candidates` random candidates: a quality shard
           (accuracy + size), a latency job of a latency run (accuracy + size + latency in one pass) and
           a latency-only job; wall time from process start, start + loads, a quality job's first-candidate
           warm-up, the share of the job's overhead, per-candidate phases
  pool     one iteration of `--pool RUNS POPULATION` size searches (default 12 x 8, the default's BERT
           comparison): a quality shard per run against one shard pooling them all; summed wall time,
           start + loads, warm-up and their share
  repeat   repeatability of a latency: the largest all-INT8 sub-network measured by `--repeat-jobs`
           separate latency jobs; the spread of the reported statistic between jobs
  cache    Inductor compile time per candidate: cold cache dir, later candidates of the same process, a fresh
           process with the warm cache dir (same candidates, then new ones); cache hit/miss/bypass counters
  tau      over `--subnets` random sub-networks: compiled end-to-end INT8 latency (the figures' measure)
           against cheaper search-time estimators (torch.ao eager INT8 with the x86 engine, the uncompiled
           QDQ graph, MACs, model size); Kendall's tau of each against the compiled latency, and its cost

    .venv/bin/python benchmarks/evaluation_cost.py --threads 2 --candidates 24 --subnets 24

prints one table per section and writes OUT/evaluation_cost_{section}.csv (OUT: --out, default
benchmarks/out). Timings depend on the machine's load: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import kendalltau
from torch import nn

from simqnas.candidate import (
    EvaluationSettings,
    accuracy,
    evaluate_candidate,
    quantize_subnetwork,
    subnetwork_policy,
)
from simqnas.data import save_split
from simqnas.data.batching import batches, labelled_batches
from simqnas.data.prepare import calibration_subset, prepare_text_dataset
from simqnas.eager_int8 import quantize_eager
from simqnas.embedded import minilm_dir
from simqnas.evalstore import EvaluationStore
from simqnas.io import write_text_atomic
from simqnas.latency import (
    GatedLatency,
    HostProfile,
    LatencySettings,
    host_info,
    measure_latency,
    repeatability,
)
from simqnas.quantize import (
    INT8,
    compile_for_inference,
    export_for_quantization,
    int8_kernels_used,
    model_size_bytes,
)
from simqnas.space import SearchSpace
from simqnas.supernets.base import Arch
from simqnas.supernets.bert import BertSuperNetwork

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"
SECTIONS = ("cost", "jobs", "pool", "repeat", "cache", "tau")


class Setup:
    """The super-network, space, data and settings of the embedded default, loaded once."""

    def __init__(self, threads: int, probe_samples: int) -> None:
        config = yaml.safe_load(CONFIG.read_text())
        spec = config["supernets"]["bert"]
        dataset = config["datasets"][spec["dataset"]]
        splits, _ = prepare_text_dataset(dataset)
        cal = spec["calibration"]
        self.calibration = calibration_subset(splits["calibration"], cal["samples"], cal["seed"])
        self.validation = splits["validation"]
        host = config["hosts"]["local"]
        self.latency = LatencySettings(
            warmup=host["warmup"], runs=host["runs"], threads=threads, trim=host["trim"]
        )
        self.settings = EvaluationSettings(cal["batch_size"], spec["evaluation"]["batch_size"], self.latency)
        self.supernet = BertSuperNetwork.from_pretrained(
            minilm_dir(), sequence_length=dataset["max_length"]
        ).eval()
        if probe_samples:  # compile-time workers do not need a meaningful head
            fit_classifier(self.supernet, splits["train"], samples=probe_samples)
        self.space = SearchSpace.from_yaml(ROOT / spec["space"]).with_layer_names(
            self.supernet.quantizable_layers()
        )
        self.names = self.supernet.input_names

    def candidate(self, genome: np.ndarray) -> tuple[Arch, dict[str, str]]:
        config = self.space.decode(self.space.canonical(genome))
        return config, config.pop("quantization")

    def extreme(self, largest: bool) -> np.ndarray:
        """The smallest (first choices) or largest (last choices) architecture, every layer INT8."""
        genome = np.zeros(self.space.n_genes, dtype=np.int64)
        if largest:
            genome[: self.space.n_arch_genes] = self.space.cardinalities[: self.space.n_arch_genes] - 1
        config = self.space.decode(genome)
        config["quantization"] = dict.fromkeys(config["quantization"], INT8)
        return self.space.encode(config)

    def random(self, n: int, seed: int) -> list[np.ndarray]:
        return list(self.space.sample(n, np.random.default_rng(seed)))

    def one(self) -> tuple[torch.Tensor, ...]:
        return next(batches(self.validation, self.names, 1))


def fit_classifier(supernet: BertSuperNetwork, train: Mapping[str, torch.Tensor], samples: int) -> None:
    """A linear probe for the classification head (the checkpoint has none): logistic regression on the
    full network's pooled FP32 features of `samples` training sentences. Cost does not depend on it, but
    comparing predictions of two INT8 executions needs logits with real margins, not near-ties."""
    from sklearn.linear_model import LogisticRegression

    subset = {name: tensor[:samples] for name, tensor in train.items()}
    with torch.inference_mode():
        pooled = torch.cat(
            [supernet.encode(*inputs)[1] for inputs in batches(subset, supernet.input_names, 64)]
        )
    probe = LogisticRegression(max_iter=1000).fit(pooled.numpy(), subset["labels"].numpy())
    with torch.no_grad():
        # two classes: sklearn's single logit becomes (0, w x + b) logits
        supernet.classifier.weight.copy_(torch.tensor(np.stack([0 * probe.coef_[0], probe.coef_[0]])))
        supernet.classifier.bias.copy_(torch.tensor([0.0, probe.intercept_[0]]))


def describe(arch: Arch, policy: Mapping[str, str]) -> str:
    depth = arch["num_layers"][0]
    int8 = sum(p == INT8 for p in policy.values())
    return (
        f"L{depth} h{arch['num_heads'][:depth]} f{arch['ffn_size'][:depth]} int8={int8}/{len(policy)}"
    ).replace(", ", ",")


# ---------------------------------------------------------------------------------------------- cost


def section_cost(setup: Setup) -> pd.DataFrame:
    rows = []
    for repeat in (1, 2):
        for label, largest in (("smallest", False), ("largest", True)):
            arch, policy = setup.candidate(setup.extreme(largest))
            record = evaluate_candidate(
                setup.supernet, arch, policy, setup.calibration, setup.validation, setup.settings
            )
            rows.append(
                {
                    "subnetwork": label,
                    "pass": repeat,
                    **{f"{k}_s": v for k, v in record["timings_s"].items()},
                    "total_s": sum(record["timings_s"].values()),
                    "accuracy": record["accuracy"],
                    "size_mb": record["size_bytes"] / 1e6,
                    "latency_ms": record["latency"]["stats"]["median"],
                    "latency_min_ms": record["latency"]["stats"]["min"],
                }
            )
    rows.append(qdq_vs_compiled(setup))
    rows.append(export_modes(setup))
    return pd.DataFrame(rows)


def export_modes(setup: Setup) -> dict[str, Any]:
    """INC's own export (strict TorchDynamo tracing) against ours (non-strict) on the largest sub-network:
    the same graph, so the same numbers, in a fraction of the time."""
    from neural_compressor.torch.export import export

    arch, _ = setup.candidate(setup.extreme(True))
    subnet = setup.supernet.extract(arch)
    example = next(batches(setup.calibration, setup.names, 2))
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    start = time.perf_counter()
    strict = export(subnet, example, dynamic_shapes=dynamic)
    strict_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = export_for_quantization(subnet, example, dynamic)
    return {
        "subnetwork": "largest: export, INC strict vs non-strict",
        "pass": 1,
        "export_strict_s": strict_s,
        "export_non_strict_s": time.perf_counter() - start,
        "same_graph": str(strict.graph) == str(ours.graph),
    }


def qdq_vs_compiled(setup: Setup) -> dict[str, Any]:
    """Accuracy of the largest all-INT8 sub-network on the QDQ graph (what evaluations report) and on its
    compiled INT8 kernels at the same batch size: the numbers must agree for QDQ accuracy to stand."""
    arch, policy = setup.candidate(setup.extreme(True))
    subnet = setup.supernet.extract(arch)
    qmodel = quantize_subnetwork(
        subnet,
        policy,
        setup.calibration,
        setup.names,
        setup.settings.calibration_batch_size,
        setup.supernet.variable_dims(),
    )
    batch = 50  # divides the 1000 validation samples: one compiled shape
    start = time.perf_counter()
    qdq_accuracy = accuracy(qmodel, labelled_batches(setup.validation, setup.names, batch))
    qdq_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = compile_for_inference(qmodel, next(batches(setup.validation, setup.names, batch)))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled_accuracy = accuracy(compiled, labelled_batches(setup.validation, setup.names, batch))
    compiled_s = time.perf_counter() - start
    with torch.inference_mode():
        agree = np.mean(
            [
                bool((qmodel(*inputs).argmax(-1) == compiled(*inputs).argmax(-1)).all())
                for inputs in batches(setup.validation, setup.names, batch)
            ]
        )
    start = time.perf_counter()
    fp32_accuracy = accuracy(subnet, labelled_batches(setup.validation, setup.names, batch))
    fp32_s = time.perf_counter() - start
    return {
        "subnetwork": "largest: QDQ vs compiled accuracy",
        "pass": 1,
        "accuracy": qdq_accuracy,
        "compiled_accuracy": compiled_accuracy,
        "batches_identical_predictions": agree,
        "accuracy_s": qdq_s,
        "compiled_compile_s": compile_s,
        "compiled_accuracy_s": compiled_s,
        "fp32_accuracy": fp32_accuracy,
        "fp32_accuracy_s": fp32_s,
    }


# ---------------------------------------------------------------------------------------------- shard


def write_job_files(setup: Setup, root: Path) -> dict[str, str]:
    """The files a job of the workflow reads (super-network, space, calibration and validation splits)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {name: str(root / f"{name}.safetensors") for name in ("supernet", "calibration", "validation")}
    setup.supernet.save(files["supernet"])
    save_split(files["calibration"], setup.calibration)
    save_split(files["validation"], setup.validation)
    files["space"] = str(root / "space.yaml")
    write_text_atomic(files["space"], yaml.safe_dump(setup.space.to_dict(), sort_keys=False))
    return files


#: the jobs of a search iteration as the workflow runs them: (label, what the job measures)
JOBS = {
    "quality shard (accuracy + size)": "quality",
    "latency job, one pass (accuracy + size + latency)": "one_pass",
    "latency job, latency only (front re-measurement)": "latency",
}


def job_worker(request: dict[str, Any]) -> dict[str, Any]:
    """In this fresh process, as `evaluate_shard` / `measure_latency` do: load the context, then evaluate
    every genome (a quality job: of every run of `request["pool"]`) into an empty store. Seconds are
    counted from `request["spawned"]`, the parent's clock just before it started this process, so
    interpreter start and imports count as job start. A quality job then evaluates its first candidate
    again, in the now warm process and into another empty store: what the first one cost beyond that is
    the job's warm-up (the imports and first traces that happen inside a first quantization)."""
    import time as clock

    from simqnas.shard import EvaluationContext, evaluate_pool, measure_on_host

    spec = {"calibration": {"batch_size": request["calibration_batch_size"]}}
    spec["evaluation"] = {"batch_size": request["eval_batch_size"]}
    context = EvaluationContext.from_job(request["files"], "joint", spec)
    store = EvaluationStore(request["store"])
    pool = request.get("pool") or {"run": request["genomes"]}
    members = {run: list(enumerate(np.asarray(genomes))) for run, genomes in pool.items()}
    genomes = [member for run_members in members.values() for member in run_members]
    loaded = clock.time() - request["spawned"]
    warm_first = None
    if request["kind"] == "quality":
        table = evaluate_pool(context, members, store)
        keys = list(table["quality_key"])
        done = clock.time() - request["spawned"]
        with tempfile.TemporaryDirectory(prefix="evals-warm-") as again:
            warm = evaluate_pool(context, {"run": genomes[:1]}, EvaluationStore(again))
            warm_first = sum(EvaluationStore(again).get(warm["quality_key"][0])["timings_s"].values())
    else:
        host, machine = HostProfile.for_latency_job(request["host"])
        table = measure_on_host(
            context, genomes, host, machine, store, with_quality=request["kind"] == "one_pass"
        )
        keys = list(table["latency_key"])
        done = clock.time() - request["spawned"]
    timings = [store.get(key)["timings_s"] for key in keys]
    return {"start_and_loads_s": loaded, "timings": timings, "done": done, "warm_first_s": warm_first}


def job_overhead(result: Mapping[str, Any]) -> dict[str, float]:
    """What a job paid beyond its candidates' own evaluations: start and loads before the first candidate,
    the rest of the time between candidates, and (quality jobs) the first candidate's warm-up."""
    evaluations = sum(sum(timings.values()) for timings in result["timings"])
    warmup = 0.0
    if result["warm_first_s"] is not None:
        warmup = max(0.0, sum(result["timings"][0].values()) - result["warm_first_s"])
    overhead = result["done"] - evaluations + warmup
    return {
        "wall_s": result["done"],
        "start_and_loads_s": result["start_and_loads_s"],
        "first_candidate_warmup_s": warmup,
        "overhead_s": overhead,
        "overhead_share": overhead / result["done"],
    }


def section_jobs(
    setup: Setup, candidates: int, seed: int, host: dict[str, Any], files: dict[str, str]
) -> pd.DataFrame:
    """Each job kind over the same `candidates` random candidates, in a fresh process with an empty store:
    wall time from process start, the share of start + loads, and per candidate the mean of each phase."""
    genomes = [[int(g) for g in genome] for genome in setup.random(candidates, seed)]
    rows = []
    for label, kind in JOBS.items():
        with tempfile.TemporaryDirectory(prefix="evals-") as store:
            request = {
                "kind": kind,
                "files": files,
                "store": store,
                "genomes": genomes,
                "host": host,
                "calibration_batch_size": setup.settings.calibration_batch_size,
                "eval_batch_size": setup.settings.eval_batch_size,
            }
            result = _run_worker("--job-worker", request)
        wall = result["done"]
        phases = pd.DataFrame(result["timings"]).fillna(0.0)
        rows.append(
            {
                "job": label,
                "candidates": candidates,
                **job_overhead(result),
                "per_candidate_s": wall / candidates,
                "per_candidate_without_start_s": (wall - result["start_and_loads_s"]) / candidates,
                **{f"{phase}_s": seconds for phase, seconds in phases.mean().items()},
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- pool


def section_pool(setup: Setup, runs: int, population: int, seed: int, files: dict[str, str]) -> pd.DataFrame:
    """One iteration of `runs` accuracy + size searches of `population` random candidates each, evaluated
    the two ways the workflow has laid out: a quality shard per run (before), and one shard pooling every
    run's population (the workflow's `evaluate_shard` since pools, at the default's `shards: 1`). Each job
    is a fresh process with an empty store; per layout the summed wall time, start and loads, first
    candidates' warm-up, and the share of the wall time they take."""
    genomes = setup.random(runs * population, seed)
    pool = {
        f"run{r}": [[int(g) for g in genome] for genome in genomes[r * population : (r + 1) * population]]
        for r in range(runs)
    }
    layouts = {"a shard per run (before)": [{run: pool[run]} for run in pool], "one pooled shard": [pool]}
    rows = []
    for layout, jobs in layouts.items():
        results = []
        for members in jobs:
            with tempfile.TemporaryDirectory(prefix="evals-") as store:
                request = {
                    "kind": "quality",
                    "files": files,
                    "store": store,
                    "pool": members,
                    "calibration_batch_size": setup.settings.calibration_batch_size,
                    "eval_batch_size": setup.settings.eval_batch_size,
                }
                results.append(job_overhead(_run_worker("--job-worker", request)))
        summed = pd.DataFrame(results).sum()
        rows.append(
            {
                "layout": layout,
                "jobs": len(jobs),
                "candidates": runs * population,
                **{key: summed[key] for key in ("wall_s", "start_and_loads_s", "first_candidate_warmup_s")},
                "overhead_s": summed["overhead_s"],
                "overhead_share": summed["overhead_s"] / summed["wall_s"],
                "overhead_per_job_s": summed["overhead_s"] / len(jobs),
                "per_candidate_s": summed["wall_s"] / (runs * population),
            }
        )
    return pd.DataFrame(rows)


def section_repeat(setup: Setup, jobs: int, host: dict[str, Any], files: dict[str, str]) -> pd.DataFrame:
    """Repeatability of a latency: the largest sub-network, all-INT8, measured by `jobs` separate latency
    jobs (each compiles it anew): the spread of the reported statistic between jobs."""
    genome = [int(g) for g in setup.extreme(largest=True)]
    measured = []
    for _ in range(jobs):
        with tempfile.TemporaryDirectory(prefix="evals-") as store:
            request = {
                "kind": "latency",
                "files": files,
                "store": store,
                "genomes": [genome],
                "host": host,
                "calibration_batch_size": setup.settings.calibration_batch_size,
                "eval_batch_size": setup.settings.eval_batch_size,
            }
            _run_worker("--job-worker", request)
            record = next(EvaluationStore(store).root.rglob("*.json")).read_text()
        measured.append(GatedLatency.from_dict(json.loads(record)["record"]["latency"]))
    frame = pd.DataFrame([{"job": job, **gated.columns()} for job, gated in enumerate(measured)])
    # between jobs: the median (reported) against the 5% trimmed mean (the statistic before)
    for name, value in repeatability([gated.stats for gated in measured]).items():
        frame[name] = value
    return frame


# ---------------------------------------------------------------------------------------------- cache


def compile_worker(genomes: list[list[int]], threads: int) -> list[dict[str, Any]]:
    """In this process: quantize and compile each genome; compile seconds and Inductor cache counters."""
    from torch._dynamo.utils import counters

    torch.set_num_threads(threads)
    setup = Setup(threads, probe_samples=0)
    results = []
    for genome in genomes:
        arch, policy = setup.candidate(np.asarray(genome))
        subnet = setup.supernet.extract(arch)
        policy = subnetwork_policy(subnet, policy)
        qmodel = quantize_subnetwork(
            subnet, policy, setup.calibration, setup.names, setup.settings.calibration_batch_size
        )
        before = dict(counters["inductor"])
        start = time.perf_counter()
        compile_for_inference(qmodel, setup.one())
        seconds = time.perf_counter() - start
        after = counters["inductor"]
        delta = {k: after[k] - before.get(k, 0) for k in after if k.startswith("fxgraph_cache")}
        results.append({"subnetwork": describe(arch, policy), "compile_s": seconds, **delta})
    return results


def _run_worker(flag: str, request: Any, env: Mapping[str, str] | None = None, threads: int = 2) -> Any:
    """Run this script as a worker process (`flag` with a JSON request); its last stdout line is JSON."""
    if isinstance(request, dict):
        request = {**request, "spawned": time.time()}
    done = subprocess.run(
        [sys.executable, __file__, flag, json.dumps(request), "--threads", str(threads)],
        env={**os.environ, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def section_cache(setup: Setup, candidates: int, seed: int, threads: int) -> pd.DataFrame:
    first = setup.random(candidates, seed)
    second = setup.random(candidates, seed + 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache:
        for condition, genomes in (
            ("cold cache dir, new process", first),
            ("warm cache dir, new process, same candidates", first),
            ("warm cache dir, new process, new candidates", second),
        ):
            payload = [[int(g) for g in genome] for genome in genomes]
            env = {"TORCHINDUCTOR_CACHE_DIR": cache}
            for order, result in enumerate(_run_worker("--compile-worker", payload, env, threads)):
                rows.append({"condition": condition, "order_in_process": order, **result})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- tau


def macs(subnet: nn.Module, policy: Mapping[str, str]) -> tuple[int, int]:
    """Multiply-accumulates per token of the Linear layers: (INT8, FP32)."""
    int8 = fp32 = 0
    for name, module in subnet.named_modules():
        if isinstance(module, nn.Linear):
            if policy[name] == INT8:
                int8 += module.in_features * module.out_features
            else:
                fp32 += module.in_features * module.out_features
    return int8, fp32


def section_tau(setup: Setup, subnets: int, seed: int, rounds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build every sub-network's compiled, QDQ and eager INT8 model first, then time them in `rounds`
    interleaved rounds (shuffled order each round), so that load drift on a shared machine spreads over all
    sub-networks instead of ranking them; per model the median of its round means and its fastest run."""
    settings = setup.latency
    one = setup.one()
    rows, models = [], []
    for genome in setup.random(subnets, seed):
        arch, policy = setup.candidate(genome)
        subnet = setup.supernet.extract(arch)
        policy = subnetwork_policy(subnet, policy)
        row: dict[str, Any] = {
            "subnetwork": describe(arch, policy),
            "size_bytes": model_size_bytes(subnet, policy),
        }
        row["macs_int8"], row["macs_fp32"] = macs(subnet, policy)
        row["macs"] = row["macs_int8"] + row["macs_fp32"]
        start = time.perf_counter()
        qmodel = quantize_subnetwork(
            subnet, policy, setup.calibration, setup.names, setup.settings.calibration_batch_size
        )
        row["quantize_s"] = time.perf_counter() - start
        start = time.perf_counter()
        compiled = compile_for_inference(qmodel, one)
        row["compile_s"] = time.perf_counter() - start
        row["int8_kernels"] = ",".join(int8_kernels_used(compiled, one))
        start = time.perf_counter()
        eager = quantize_eager(
            setup.supernet.extract(arch),
            policy,
            batches(setup.calibration, setup.names, setup.settings.calibration_batch_size),
        )
        row["eager_prepare_s"] = time.perf_counter() - start
        rows.append(row)
        models.append({"compiled": compiled, "qdq": qmodel, "eager_int8": eager})
        print(f"  built {len(rows)}/{subnets}: {row['subnetwork']}", flush=True)

    runs = {"compiled": max(1, settings.runs // rounds), "eager_int8": 20, "qdq": 5}
    means: dict[tuple[int, str], list[float]] = {}
    fastest: dict[tuple[int, str], float] = {}
    order = np.random.default_rng(seed)
    for _ in range(rounds):
        for index in order.permutation(len(models)):
            for kind, model in models[index].items():
                stats = measure_latency(
                    model, one, warmup=2, runs=runs[kind], threads=settings.threads, trim=settings.trim
                )
                means.setdefault((index, kind), []).append(stats.mean)
                fastest[index, kind] = min(fastest.get((index, kind), np.inf), stats.min)
    for index, row in enumerate(rows):
        for kind in runs:
            row[f"{kind}_ms"] = float(np.median(means[index, kind]))
            row[f"{kind}_min_ms"] = fastest[index, kind]
        # reliability: the compiled measurement against itself, odd against even rounds
        row["compiled_odd_ms"] = float(np.median(means[index, "compiled"][1::2]))
        row["compiled_even_ms"] = float(np.median(means[index, "compiled"][0::2]))
    frame = pd.DataFrame(rows)

    summary = []
    for estimator, reference, label in (
        ("eager_int8_ms", "compiled_ms", "torch.ao eager INT8 (x86) vs compiled, median of round means"),
        ("eager_int8_min_ms", "compiled_min_ms", "torch.ao eager INT8 (x86) vs compiled, fastest run"),
        ("qdq_ms", "compiled_ms", "uncompiled QDQ graph vs compiled"),
        ("macs", "compiled_ms", "Linear MACs (precision-blind) vs compiled"),
        ("size_bytes", "compiled_ms", "model size vs compiled"),
        ("compiled_odd_ms", "compiled_even_ms", "compiled, odd vs even rounds (noise ceiling)"),
    ):
        tau, p = kendalltau(frame[estimator], frame[reference])
        summary.append({"estimator": label, "kendall_tau": tau, "p_value": p, "n": len(frame)})
    return frame, pd.DataFrame(summary)


# ---------------------------------------------------------------------------------------------- main


def show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n== {title}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=24, help="candidates per job / cache process")
    parser.add_argument(
        "--pool",
        type=int,
        nargs=2,
        default=(12, 8),
        metavar=("RUNS", "POPULATION"),
        help="size runs and population of the pooled iteration (default: the default's BERT comparison)",
    )
    parser.add_argument("--repeat-jobs", type=int, default=5, help="separate latency jobs for repeatability")
    parser.add_argument("--subnets", type=int, default=24, help="sub-networks for Kendall's tau")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds for tau")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-samples", type=int, default=2000, help="training sentences for the head")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--compile-worker", help=argparse.SUPPRESS)
    parser.add_argument("--job-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile_worker:
        print(json.dumps(compile_worker(json.loads(args.compile_worker), args.threads)))
        return
    if args.job_worker:
        print(json.dumps(job_worker(json.loads(args.job_worker))))
        return

    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    torch.set_num_threads(args.threads)
    # a fresh Inductor cache: the first compile here is what a first candidate on a new machine pays
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor-cache-"))
    print(json.dumps(host_info()))
    # other processes on the machine inflate every timing below (2-thread runs most)
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    setup = Setup(args.threads, args.probe_samples)
    tables: dict[str, pd.DataFrame] = {}
    if "cost" in sections:
        tables["cost"] = section_cost(setup)
    host = {"name": "local", **yaml.safe_load(CONFIG.read_text())["hosts"]["local"], "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="job-files-") as job_root:
        if {"jobs", "pool", "repeat"} & set(sections):
            files = write_job_files(setup, Path(job_root))
        if "jobs" in sections:
            tables["jobs"] = section_jobs(setup, args.candidates, args.seed, host, files)
        if "pool" in sections:
            runs, population = args.pool
            tables["pool"] = section_pool(setup, runs, population, args.seed + 300, files)
        if "repeat" in sections:
            tables["repeat"] = section_repeat(setup, args.repeat_jobs, host, files)
    if "cache" in sections:
        tables["cache"] = section_cache(setup, args.candidates, args.seed + 100, args.threads)
    if "tau" in sections:
        tables["tau"], tables["tau_summary"] = section_tau(setup, args.subnets, args.seed + 200, args.rounds)
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    for name, frame in tables.items():
        show(name, frame)
        write_text_atomic(args.out / f"evaluation_cost_{name}.csv", frame.to_csv(index=False))


if __name__ == "__main__":
    main()
