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
    script:
        "../scripts/measure_latency.py"
