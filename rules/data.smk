# Stage 1: seeded train / validation (search) / calibration / test (held out) splits from local files,
# one rule per dataset kind.


rule prepare_text_data:
    output:
        train="results/data/{dataset}/train.safetensors",
        validation="results/data/{dataset}/validation.safetensors",
        calibration="results/data/{dataset}/calibration.safetensors",
        test="results/data/{dataset}/test.safetensors",
        summary="results/data/{dataset}/summary.json",
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=datasets_of_kind("text"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
    script:
        "../scripts/prepare_text_data.py"


rule prepare_image_data:
    output:
        train="results/data/{dataset}/train.safetensors",
        validation="results/data/{dataset}/validation.safetensors",
        calibration="results/data/{dataset}/calibration.safetensors",
        test="results/data/{dataset}/test.safetensors",
        summary="results/data/{dataset}/summary.json",
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    wildcard_constraints:
        dataset=datasets_of_kind("image"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
    script:
        "../scripts/prepare_image_data.py"
