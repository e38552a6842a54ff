# Stage 6: latency on a host profile: exclusive (locally the `latency_slots` resource serializes these
# jobs and they take every core; on SLURM an exclusive node with the profile's feature), pinned
# threads, batch 1, compiled INT8 kernels. Normalized latency = latency / all-INT8 baseline, same host.


rule baseline_latency:
    input:
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        calibration="results/{net}/calibration.safetensors",
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        "results/{net}/baseline/latency-{host}/{precision}.json",
    log:
        "results/logs/{net}/baseline_latency_{host}_{precision}.log",
    benchmark:
        "results/benchmarks/{net}/baseline_latency_{host}_{precision}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: exclusive_threads
    resources:
        latency_slots=1,
        mem_mb=4000,
        runtime=30,
        slurm_extra="--exclusive",
        constraint=lambda wildcards: host_resources(wildcards.host)["constraint"],
    params:
        host=lambda wildcards: {"name": wildcards.host, **HOSTS[wildcards.host]},
        supernet=supernet_params(*EVALUATION_KEYS),
    script:
        "../scripts/baseline_latency.py"


rule measure_latency:
    input:
        candidates=f"{RUN_DIR}/it{{it}}/candidates.json",
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        calibration="results/{net}/calibration.safetensors",
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        f"{RUN_DIR}/it{{it}}/latency-{{host}}.csv",
    log:
        f"results/logs/{RUN}/it{{it}}/latency-{{host}}.log",
    benchmark:
        f"results/benchmarks/{RUN}/it{{it}}/latency-{{host}}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: exclusive_threads
    resources:
        latency_slots=1,
        mem_mb=4000,
        runtime=120,
        slurm_extra="--exclusive",
        constraint=lambda wildcards: host_resources(wildcards.host)["constraint"],
    params:
        host=lambda wildcards: {"name": wildcards.host, **HOSTS[wildcards.host]},
        supernet=supernet_params(*EVALUATION_KEYS),
        store=lambda wildcards: f"results/{wildcards.net}/evals",
        quality_threads=config["threads"],
    script:
        "../scripts/measure_latency.py"


# The final LINAS front of the joint accuracy + latency search (seeds pooled), measured again on every
# configured host profile (baseline_latency gives each host's all-INT8 reference), so the figure shows how
# normalized latency and ranking move between hosts. On the host the search ran on, the stored measurements
# are read back (same network, policy and host profile: same evaluation key).


rule latency_front:
    input:
        evaluations="results/{net}/summary/evaluations.csv",
        unstable="results/{net}/summary/unstable_latency.csv",
    output:
        "results/{net}/hosts/front.csv",
    log:
        "results/logs/{net}/hosts/front.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        search=FRONT_SEARCH,
    script:
        "../scripts/latency_front.py"


rule remeasure_front_latency:
    input:
        front="results/{net}/hosts/front.csv",
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        calibration="results/{net}/calibration.safetensors",
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        "results/{net}/hosts/latency-{host}.csv",
    log:
        "results/logs/{net}/hosts/latency-{host}.log",
    benchmark:
        "results/benchmarks/{net}/hosts/latency-{host}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: exclusive_threads
    resources:
        latency_slots=1,
        mem_mb=4000,
        runtime=120,
        slurm_extra="--exclusive",
        constraint=lambda wildcards: host_resources(wildcards.host)["constraint"],
    params:
        host=lambda wildcards: {"name": wildcards.host, **HOSTS[wildcards.host]},
        supernet=supernet_params(*EVALUATION_KEYS),
        store=lambda wildcards: f"results/{wildcards.net}/evals",
    script:
        "../scripts/remeasure_front_latency.py"
