# Stage 4: the paper's reference points: the full super-network in FP32 and with every layer INT8.


rule baseline_quality:
    input:
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
        calibration="results/{net}/calibration.safetensors",
    output:
        "results/{net}/baseline/{precision}.json",
    log:
        "results/logs/{net}/baseline_{precision}.log",
    benchmark:
        "results/benchmarks/{net}/baseline_{precision}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        supernet=supernet_params(*EVALUATION_KEYS),
        quality_threads=config["threads"],
    script:
        "../scripts/baseline_quality.py"
