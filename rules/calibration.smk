# Stage 3: the fixed, seeded calibration subset every quantization of a super-network uses.


rule calibration_set:
    input:
        calibration=lambda wildcards: split_file(wildcards.net, "calibration"),
    output:
        "results/{net}/calibration.safetensors",
    log:
        "results/logs/{net}/calibration_set.log",
    conda:
        "../envs/quantize.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        calibration=lambda wildcards: SUPERNETS[wildcards.net].get("calibration", {}),
    script:
        "../scripts/calibration_set.py"
