# Stage 2: the elastic super-network, trained InstaTune-style with a fine-tuned teacher, or loaded.


rule finetune_teacher:
    input:
        train=lambda wildcards: split_file(wildcards.net, "train"),
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        teacher="results/{net}/teacher.safetensors",
        metrics="results/{net}/teacher.json",
    params:
        supernet=lambda wildcards: SUPERNETS[wildcards.net],
        dataset=lambda wildcards: DATASETS[dataset_of(wildcards.net)],
        checkpoint_dir=lambda wildcards: f"results/{wildcards.net}/checkpoints/teacher",
    log:
        "results/logs/{net}/finetune_teacher.log",
    benchmark:
        "results/benchmarks/{net}/finetune_teacher.tsv"
    threads: config["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
    script:
        "../scripts/finetune_teacher.py"


def supernet_source(wildcards) -> dict:
    """A given checkpoint is loaded and checked; otherwise the teacher-distilled training runs."""
    given = SUPERNETS[wildcards.net].get("checkpoint")
    if given:
        return {"checkpoint": given}
    return {"teacher": f"results/{wildcards.net}/teacher.safetensors"}


rule train_supernet:
    input:
        unpack(supernet_source),
        train=lambda wildcards: split_file(wildcards.net, "train"),
        validation=lambda wildcards: split_file(wildcards.net, "validation"),
    output:
        supernet="results/{net}/supernet.safetensors",
        space="results/{net}/space.yaml",
        metrics="results/{net}/supernet.json",
    params:
        supernet=lambda wildcards: SUPERNETS[wildcards.net],
        dataset=lambda wildcards: DATASETS[dataset_of(wildcards.net)],
        checkpoint_dir=lambda wildcards: f"results/{wildcards.net}/checkpoints/supernet",
    log:
        "results/logs/{net}/train_supernet.log",
    benchmark:
        "results/benchmarks/{net}/train_supernet.tsv"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=600,
    script:
        "../scripts/train_supernet.py"
