"""Rule propose: the next population of a search run, a pure function of the run's evaluations so far."""

import logging

from simqnas.history import history_from_tables, write_candidates
from simqnas.logs import log_to
from simqnas.search import get_algorithm
from simqnas.space import SearchSpace

log_to(snakemake.log[0])

run = snakemake.params.run
iteration = int(snakemake.wildcards.it)
space = SearchSpace.from_yaml(snakemake.input.space).subspace(run.space)
history = history_from_tables(list(snakemake.input.history), space.n_genes, run.objective)
algorithm = get_algorithm(run.algorithm, **snakemake.params.algorithm)
genomes = algorithm.propose(space, history, run.iteration_size(iteration), run.seed, iteration)
requested = run.iteration_size(iteration)
logging.info(
    "%s iteration %d: %d candidates from %d evaluations", run.algorithm, iteration, len(genomes), len(history)
)
if len(genomes) < requested:
    logging.warning(
        "the space is exhausted: %d of %d candidates proposed (every other network is evaluated); the run "
        "ends with %d evaluations of its budget of %d",
        len(genomes),
        requested,
        len(history) + len(genomes),
        run.evaluations,
    )
write_candidates(
    snakemake.output.candidates,
    genomes,
    {
        "run": vars(run),
        "iteration": iteration,
        "space": run.space,
        "configs": [space.decode(g) for g in genomes],
    },
)
