# Stage 5: the searches. Iteration `it` of a run proposes a population (a checkpoint: the number of
# shards follows from what was proposed); the accuracy + size runs of a network and space pool their
# iteration-`it` populations into `shards` evaluation jobs (one process, many candidates: its start and
# loads are paid once for them all; every evaluation stored content-addressed under results/{net}/evals
# and reused by every run); a latency run's iteration is one exclusive latency job; a gather rule writes
# each run's evaluations of the iteration.


checkpoint propose:
    input:
        space="results/{net}/space.yaml",
        history=history_of,
    output:
        candidates=f"{RUN_DIR}/it{{it}}/candidates.json",
    log:
        f"results/logs/{RUN}/it{{it}}/propose.log",
    benchmark:
        f"results/benchmarks/{RUN}/it{{it}}/propose.tsv"
    conda:
        "../envs/search.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        run=run_of,
        algorithm=lambda wildcards: config.get("algorithms", {}).get(wildcards.algo, {}),
    script:
        "../scripts/propose.py"


rule evaluate_shard:
    input:
        candidates=pool_candidates,
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
        calibration="results/{net}/calibration.safetensors",
    output:
        f"{POOL_DIR}/shard{{shard}}.csv",
    log:
        f"results/logs/{POOL}/shard{{shard}}.log",
    benchmark:
        f"results/benchmarks/{POOL}/shard{{shard}}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        runs=lambda wildcards: [run.label for run in pool_runs(wildcards)],
        shards=config["shards"],
        supernet=supernet_params(*EVALUATION_KEYS),
        store=lambda wildcards: f"results/{wildcards.net}/evals",
        quality_threads=config["threads"],
    script:
        "../scripts/evaluate_shard.py"


rule gather_iteration:
    input:
        candidates=f"{RUN_DIR}/it{{it}}/candidates.json",
        shards=shards_of,
        latency=latency_of,
    output:
        f"{RUN_DIR}/it{{it}}/evaluated.csv",
    log:
        f"results/logs/{RUN}/it{{it}}/gather.log",
    conda:
        "../envs/search.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=run_of,
    script:
        "../scripts/gather_iteration.py"


rule collect_run:
    input:
        iterations_of,
    output:
        f"{RUN_DIR}/evaluations.csv",
    log:
        f"results/logs/{RUN}/collect.log",
    conda:
        "../envs/search.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=run_of,
    script:
        "../scripts/collect_run.py"
