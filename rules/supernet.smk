# Stage 2: the elastic super-network, trained InstaTune-style with a fine-tuned teacher (from scratch
# without one), or loaded.


rule finetune_teacher:
    input:
        train=lambda wildcards: split_file(wildcards.net, "train"),
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        teacher="results/{net}/teacher.safetensors",
        metrics="results/{net}/teacher.json",
    log:
        "results/logs/{net}/finetune_teacher.log",
    benchmark:
        "results/benchmarks/{net}/finetune_teacher.tsv"
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
        gpu=training_gpus("teacher"),
    params:
        supernet=supernet_params(
            "family", "pretrained", "teacher", optional=("architecture",)
        ),
        dataset=lambda wildcards: DATASETS[dataset_of(wildcards.net)],
        checkpoint_dir=lambda wildcards: f"results/{wildcards.net}/checkpoints/teacher",
    script:
        "../scripts/finetune_teacher.py"


rule train_supernet:
    input:
        unpack(supernet_source),
        train=lambda wildcards: split_file(wildcards.net, "train"),
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        metrics="results/{net}/supernet.json",
    log:
        "results/logs/{net}/train_supernet.log",
    benchmark:
        "results/benchmarks/{net}/train_supernet.tsv"
    conda:
        "../envs/train.yaml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=training_gpus("training"),
    params:
        supernet=supernet_params(
            "family",
            "pretrained",
            "checkpoint",
            "space",
            "training",
            optional=("architecture",),
        ),
        dataset=lambda wildcards: DATASETS[dataset_of(wildcards.net)],
        checkpoint_dir=lambda wildcards: f"results/{wildcards.net}/checkpoints/supernet",
    script:
        "../scripts/train_supernet.py"
