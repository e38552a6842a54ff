"""Rule propose: the next population of a search run, a pure function of the run's evaluations so far."""

import sys

from simqnas.history import history_from_tables, write_candidates
from simqnas.search import get_algorithm
from simqnas.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w")

run = snakemake.params.run
iteration = int(snakemake.wildcards.it)
space = SearchSpace.from_yaml(snakemake.input.space).subspace(run.space)
history = history_from_tables(list(snakemake.input.history), space.n_genes, run.objective)
algorithm = get_algorithm(run.algorithm, **snakemake.params.algorithm)
genomes = algorithm.propose(space, history, run.iteration_size(iteration), run.seed, iteration)
print(f"{run.algorithm} iteration {iteration}: {len(genomes)} candidates from {len(history)} evaluations",
      file=sys.stderr)
write_candidates(
    snakemake.output.candidates,
    genomes,
    {"run": vars(run), "iteration": iteration, "space": run.space, "configs": [space.decode(g) for g in genomes]},
)
