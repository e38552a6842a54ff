# Shared helpers: the search runs from the config, paths, and wildcard constraints.
import json

from snakemake.exceptions import WorkflowError

from simqnas.config import FRONT_SEARCH, SearchRun

SUPERNETS = config["supernets"]
DATASETS = config["datasets"]
HOSTS = config["hosts"]
PY = sys.executable

# Super-networks some experiment searches, in config order: only these have runs, summaries, figures and
# headline tables. The fixed reference networks they name (`references:`, e.g. ResNet50/101/152 shapes) are
# trained and measured by the same training and baseline rules, and appear only in the summaries, figures
# and claims of the network that names them.
SEARCHED_NETS = [net for net in SUPERNETS if any(run.net == net for run in RUNS)]
# A reference is compared as the paper does, all-INT8; its FP32 point appears only in the size progression,
# which needs no latency, so only its INT8 latency is measured.
REFERENCE_LATENCY_PRECISIONS = ("int8",)


def alternatives(names):
    return "|".join(sorted(names))


def datasets_of_kind(kind: str) -> str:
    """Wildcard pattern of the datasets of one kind (text | image); none of that kind matches nothing."""
    names = [name for name, spec in DATASETS.items() if spec["kind"] == kind]
    return alternatives(names) if names else "(?!)"


wildcard_constraints:
    net=alternatives(SUPERNETS),
    dataset=alternatives(DATASETS),
    host=alternatives(HOSTS),
    space="joint|quant|arch",
    obj="size|latency",
    algo="linas|nsga2|random|tpe",
    precision="fp32|int8",
    seed=r"\d+",
    it=r"\d+",
    shard=r"\d+",
    split="train|validation|calibration|test",


# a search run's folder under results/ (outputs), results/logs/ and results/benchmarks/
RUN = "{net}/search/{space}-{obj}/{algo}/seed{seed}"
RUN_DIR = f"results/{RUN}"
# the accuracy + size shards of one iteration of every size run of a network and space (`pool_runs`)
POOL = "{net}/search/{space}-size/shards/it{it}"
POOL_DIR = f"results/{POOL}"


def run_of(wildcards) -> SearchRun:
    """The configured search run a job belongs to."""
    for run in RUNS:
        if (run.net, run.space, run.objective, run.algorithm, run.seed) == (
            wildcards.net,
            wildcards.space,
            wildcards.obj,
            wildcards.algo,
            int(wildcards.seed),
        ):
            return run
    raise ValueError(f"no configured search run matches {dict(wildcards)}")


def dataset_of(net: str) -> str:
    return SUPERNETS[net]["dataset"]


def split_file(net: str, split: str) -> str:
    return f"results/data/{dataset_of(net)}/{split}.safetensors"


def run_file(run: SearchRun, name: str) -> str:
    return f"{run.directory}/{name}"


def latency_hosts(net: str) -> list[str]:
    """Hosts on which some latency experiment of this super-network runs."""
    return sorted({run.host for run in RUNS if run.net == net and run.host is not None})


def exclusive_threads(wildcards) -> int:
    """A latency job takes every core Snakemake may use (nothing else runs beside it locally), at least the
    host profile's threads. Evaluated per job, so runs without --cores (--report, dry runs) still work.
    """
    threads = HOSTS[wildcards.host]["threads"]
    try:
        return max(threads, workflow.cores)
    except WorkflowError:
        return threads


def host_resources(host: str) -> dict:
    """Scheduler resources of an exclusive latency job on a host profile."""
    return {"constraint": HOSTS[host].get("feature") or ""}


def host_front_nets() -> list[str]:
    """Super-networks with a LINAS joint accuracy + latency search: their final front is measured on every
    configured host profile."""
    return sorted(
        {
            run.net
            for run in RUNS
            if all(getattr(run, key) == value for key, value in FRONT_SEARCH.items())
        }
    )


def supernet_params(*keys, optional=()):
    """The part of a super-network's config one stage reads (other changes must not re-run it). `optional`
    keys appear only where set, so configs without them keep their params and finished results.
    """

    def params(wildcards) -> dict:
        spec = SUPERNETS[wildcards.net]
        given = {key: spec[key] for key in optional if spec.get(key) is not None}
        return {key: spec.get(key) for key in keys} | given

    return params


def training_gpus(section):
    """GPUs a training job asks for (`resources: gpu`, SLURM's --gpus): one per process when the config's
    `device` is cuda, none otherwise (the default, so CPU-only configs submit as before).
    """

    def gpus(wildcards) -> int:
        settings = SUPERNETS[wildcards.net].get(section) or {}
        if settings.get("device") != "cuda":
            return 0
        return settings.get("processes") or 1

    return gpus


EVALUATION_KEYS = ("calibration", "evaluation")


def supernet_source(wildcards) -> dict:
    """A given checkpoint is loaded and checked; otherwise training runs, distilled from the fine-tuned
    teacher if the config has one (without: cross-entropy on the sandwich, as from scratch).
    """
    spec = SUPERNETS[wildcards.net]
    if spec.get("checkpoint"):
        return {"checkpoint": spec["checkpoint"]}
    if spec.get("teacher"):
        return {"teacher": f"results/{wildcards.net}/teacher.safetensors"}
    return {}


def history_of(wildcards) -> list[str]:
    """Iteration `it` reads every evaluation of the run so far."""
    return [
        f"{RUN_DIR}/it{i}/evaluated.csv".format(**wildcards)
        for i in range(int(wildcards.it))
    ]


def candidate_count(**run_iteration) -> int:
    """How many candidates iteration `it` of a run (net, space, obj, algo, seed, it) proposed (0 once the
    search has evaluated its whole space)."""
    candidates = checkpoints.propose.get(**run_iteration).output.candidates
    return len(json.loads(open(candidates).read())["genomes"])


def pool_runs(wildcards) -> list:
    """The runs an evaluation shard of iteration `it` pools: every accuracy + size run of the network and
    space that has an iteration `it`, in config order. One process evaluates all their populations, so it
    pays its start, imports and loads once for them all (a latency run's latency job measures its own).
    """
    return [
        run
        for run in RUNS
        if (run.net, run.space, run.host) == (wildcards.net, wildcards.space, None)
        and int(wildcards.it) < run.iterations
    ]


def pool_candidates(wildcards) -> list[str]:
    return [
        run_file(run, f"it{wildcards.it}/candidates.json")
        for run in pool_runs(wildcards)
    ]


def pool_size(wildcards) -> int:
    """How many candidates the runs of a pool proposed at its iteration."""
    return sum(
        candidate_count(
            net=run.net,
            space=run.space,
            obj=run.objective,
            algo=run.algorithm,
            seed=str(run.seed),
            it=wildcards.it,
        )
        for run in pool_runs(wildcards)
    )


def shards_of(wildcards) -> list[str]:
    """Accuracy + size shards of the pool this run's iteration belongs to; none for a latency run, whose
    latency job measures accuracy, size and latency of each candidate in one pass (one quantization, one
    process)."""
    if run_of(wildcards).host:
        return []
    return [
        f"{POOL_DIR}/shard{shard}.csv".format(**wildcards)
        for shard in range(min(config["shards"], pool_size(wildcards)))
    ]


def latency_of(wildcards) -> list[str]:
    host = run_of(wildcards).host
    if not host or not candidate_count(**wildcards):
        return []
    return [f"{RUN_DIR}/it{{it}}/latency-{host}.csv".format(**wildcards)]


def iterations_of(wildcards) -> list[str]:
    run = run_of(wildcards)
    return [f"{run.directory}/it{i}/evaluated.csv" for i in range(run.iterations)]


def runs_of_net(net: str) -> list:
    return [run for run in RUNS if run.net == net]


def references_of(net: str) -> list[str]:
    """The reference networks a super-network names, in config order (headline claims match by position)."""
    return list(SUPERNETS[net].get("references") or [])


def reference_baseline_files(net: str) -> list[tuple[str, str | None, str, str]]:
    """(reference, host or None, precision, file) of every reference baseline a network's summary reads:
    FP32 and INT8 quality, and latency on each host this network's latency searches run on.
    """
    files = []
    for reference in references_of(net):
        folder = f"results/{reference}/baseline"
        files += [(reference, None, p, f"{folder}/{p}.json") for p in ("fp32", "int8")]
        files += [
            (reference, host, p, f"{folder}/latency-{host}/{p}.json")
            for host in latency_hosts(net)
            for p in REFERENCE_LATENCY_PRECISIONS
        ]
    return files


def reference_descriptions(net: str) -> list[list[str | None]]:
    """[reference, host or None, precision] of each file in `summary_inputs`' `references`, in its order."""
    return [[name, host, p] for name, host, p, _ in reference_baseline_files(net)]


def summary_inputs(wildcards) -> dict:
    net = wildcards.net
    baseline = {p: f"results/{net}/baseline/{p}.json" for p in ("fp32", "int8")}
    latency = {
        f"latency_{host}_{p}": f"results/{net}/baseline/latency-{host}/{p}.json"
        for host in latency_hosts(net)
        for p in ("fp32", "int8")
    }
    runs = [run_file(run, "evaluations.csv") for run in runs_of_net(net)]
    # a list, described by the summary's `references` params in the same order (names may hold "_")
    references = [path for *_, path in reference_baseline_files(net)]
    data = f"results/data/{dataset_of(net)}/summary.json"
    return {**baseline, **latency, "runs": runs, "references": references, "data": data}


def test_summary_inputs(wildcards) -> dict:
    """A network's test tables: its evaluations summary, each run's front on the test split (in
    `runs_of_net` order) and the FP32 / all-INT8 test baselines of the network and of its references.
    """
    net = wildcards.net
    return {
        "evaluations": f"results/{net}/summary/evaluations.csv",
        "runs": [run_file(run, "test.csv") for run in runs_of_net(net)],
        "own": [f"results/{net}/test/{p}.json" for p in ("fp32", "int8")],
        "references": [
            f"results/{reference}/test/{p}.json"
            for reference in references_of(net)
            for p in ("fp32", "int8")
        ],
    }
