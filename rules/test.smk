# Stage 8: the held-out test split, after the searches. Validation chose each run's front; every point of it
# and the baselines (FP32 and all-INT8 full network, the network's own and its references') are evaluated
# once more on test samples no training, search or calibration saw, keeping which samples each got right
# (the paired statistics of the headline and claims tables). Stored content-addressed under
# results/{net}/evals like every evaluation (the key holds the test file's hash), so runs sharing a network
# share its test evaluation.


rule test_front:
    input:
        evaluations=f"{RUN_DIR}/evaluations.csv",
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        calibration="results/{net}/calibration.safetensors",
        test=lambda wildcards: split_file(wildcards.net, "test"),
    output:
        f"{RUN_DIR}/test.csv",
    log:
        f"results/logs/{RUN}/test_front.log",
    benchmark:
        f"results/benchmarks/{RUN}/test_front.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        supernet=supernet_params(*EVALUATION_KEYS),
        store=lambda wildcards: f"results/{wildcards.net}/evals",
        quality_threads=config["threads"],
    script:
        "../scripts/test_front.py"


rule test_baseline:
    input:
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        calibration="results/{net}/calibration.safetensors",
        test=lambda wildcards: split_file(wildcards.net, "test"),
    output:
        "results/{net}/test/{precision}.json",
    log:
        "results/logs/{net}/test_baseline_{precision}.log",
    benchmark:
        "results/benchmarks/{net}/test_baseline_{precision}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        supernet=supernet_params(*EVALUATION_KEYS),
        store=lambda wildcards: f"results/{wildcards.net}/evals",
        quality_threads=config["threads"],
    script:
        "../scripts/test_baseline.py"
