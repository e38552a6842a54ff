# Stage 7: tidy summaries, the paper's tables and figures, and the `snakemake --report` captions.


rule summarize_net:
    input:
        unpack(summary_inputs),
    output:
        evaluations="results/{net}/summary/evaluations.csv",
        baselines="results/{net}/summary/baselines.csv",
        hypervolume="results/{net}/summary/hypervolume.csv",
        final_hypervolume="results/{net}/summary/hypervolume_final.csv",
        normalization="results/{net}/summary/normalization.json",
        unstable_latency="results/{net}/summary/unstable_latency.csv",
    log:
        "results/logs/{net}/summarize.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wildcards: [vars(run) for run in runs_of_net(wildcards.net)],
        references=lambda wildcards: reference_descriptions(wildcards.net),
    script:
        "../scripts/summarize_net.py"


rule summarize_test:
    input:
        unpack(test_summary_inputs),
    output:
        points="results/{net}/summary/test.csv",
        baselines="results/{net}/summary/test_baselines.csv",
    log:
        "results/logs/{net}/summarize_test.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wildcards: [vars(run) for run in runs_of_net(wildcards.net)],
        references=lambda wildcards: references_of(wildcards.net),
    script:
        "../scripts/summarize_test.py"


rule summarize_hosts:
    input:
        front="results/{net}/hosts/front.csv",
        latency=expand("results/{{net}}/hosts/latency-{host}.csv", host=sorted(HOSTS)),
        baselines=expand(
            "results/{{net}}/baseline/latency-{host}/int8.json", host=sorted(HOSTS)
        ),
    output:
        "results/{net}/summary/hosts.csv",
    log:
        "results/logs/{net}/summarize_hosts.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        hosts=sorted(HOSTS),
    script:
        "../scripts/summarize_hosts.py"


rule headline_table:
    input:
        evaluations="results/{net}/summary/evaluations.csv",
        baselines="results/{net}/summary/baselines.csv",
        test="results/{net}/summary/test.csv",
        test_baselines="results/{net}/summary/test_baselines.csv",
    output:
        csv="results/tables/{net}_headline.csv",
        md="results/tables/{net}_headline.md",
    log:
        "results/logs/{net}/headline_table.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        family=lambda wildcards: SUPERNETS[wildcards.net]["family"],
        margin=config["iso_accuracy_margin_pp"] / 100,
        references=lambda wildcards: references_of(wildcards.net),
    script:
        "../scripts/headline_table.py"


# Every searched network's headline table in one: the paper's numbers next to ours, family by family.


rule combined_headline:
    input:
        expand("results/tables/{net}_headline.csv", net=SEARCHED_NETS),
    output:
        csv="results/tables/headline.csv",
        md="results/tables/headline.md",
    log:
        "results/logs/combined_headline.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        nets=SEARCHED_NETS,
        families=[SUPERNETS[net]["family"] for net in SEARCHED_NETS],
        margin=config["iso_accuracy_margin_pp"] / 100,
    script:
        "../scripts/combined_headline.py"


# The paper's four qualitative claims for every searched network, each judged from its intervals by a
# stated rule (simqnas.claims).


rule claims_table:
    input:
        evaluations=expand("results/{net}/summary/evaluations.csv", net=SEARCHED_NETS),
        baselines=expand("results/{net}/summary/baselines.csv", net=SEARCHED_NETS),
        hypervolume=expand("results/{net}/summary/hypervolume.csv", net=SEARCHED_NETS),
        normalization=expand(
            "results/{net}/summary/normalization.json", net=SEARCHED_NETS
        ),
        test=expand("results/{net}/summary/test.csv", net=SEARCHED_NETS),
        test_baselines=expand(
            "results/{net}/summary/test_baselines.csv", net=SEARCHED_NETS
        ),
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
    log:
        "results/logs/claims_table.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        nets=SEARCHED_NETS,
        margin=config["iso_accuracy_margin_pp"] / 100,
    script:
        "../scripts/claims_table.py"


rule table_search_space:
    input:
        paper_spaces=[
            f"config/spaces/paper/{net}.yaml"
            for net in ("bert", "vit", "beit3", "resnet")
        ],
    output:
        table1_csv="results/tables/table1_search_space.csv",
        table1_md="results/tables/table1_search_space.md",
        table23_csv="results/tables/table2_3_elastic_parameters.csv",
        table23_md="results/tables/table2_3_elastic_parameters.md",
    log:
        "results/logs/table_search_space.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # searched networks only: a reference's space holds no elastic parameters to tabulate
        extra_spaces={
            net: SUPERNETS[net]["space"]
            for net in SEARCHED_NETS
            if isinstance(SUPERNETS[net]["space"], str)
        },
    script:
        "../scripts/table_search_space.py"


rule figures:
    input:
        evaluations=expand("results/{net}/summary/evaluations.csv", net=SEARCHED_NETS),
        baselines=expand("results/{net}/summary/baselines.csv", net=SEARCHED_NETS),
        hypervolume=expand("results/{net}/summary/hypervolume.csv", net=SEARCHED_NETS),
        headline=expand("results/tables/{net}_headline.csv", net=SEARCHED_NETS),
        combined_headline="results/tables/headline.csv",
        claims="results/tables/claims.csv",
        table1="results/tables/table1_search_space.csv",
        hosts=[f"results/{net}/summary/hosts.csv" for net in host_front_nets()],
    output:
        report(
            directory("results/figures"),
            patterns=["{net}/{figure}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{net}",
            labels={"network": "{net}", "figure": "{figure}"},
        ),
    log:
        "results/logs/figures.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        nets=SEARCHED_NETS,
        host_nets=host_front_nets(),
    script:
        "../scripts/figures.py"
