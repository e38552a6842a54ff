"""Training throughput (samples/s) of a config's super-network on this machine, in 1 and N processes.

Trains `supernets.<net>` of the config (default: config/smoke.yaml's `bert`, the embedded all-MiniLM-L6-v2
with the sandwich rule, distillation-free) for one epoch of its training split (`--rows` rows, batches of the
config's `batch_size`) in one process with all threads, then in each `--processes` count through torchrun
(simqnas.distributed) with the threads shared, and prints a Markdown table of the training loop's samples/s
(epoch time without evaluation; the first step, which allocates, included).

    .venv/bin/python benchmarks/training_throughput.py --processes 2 --threads 2
    .venv/bin/python benchmarks/training_throughput.py --device cuda --processes 2 4   # a GPU node
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import yaml

from simqnas.data import save_split
from simqnas.data.prepare import prepare_text_dataset
from simqnas.distributed import train_in_processes
from simqnas.execution import Execution, resolve_device, split_execution
from simqnas.space import space_from_spec
from simqnas.supernets import build_supernet, resolve_space
from simqnas.training import train_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/smoke.yaml")
    parser.add_argument("--net", default="bert")
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the whole job")
    parser.add_argument("--rows", type=int, default=256, help="training rows: one epoch of them is timed")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())
    spec = config["supernets"][args.net]
    dataset = config["datasets"][spec["dataset"]]
    dataset = {**dataset, "splits": {**dataset["splits"], "train": args.rows}}
    tensors, _ = prepare_text_dataset(dataset)
    settings, _ = split_execution(spec["training"], f"supernets.{args.net}.training")
    settings = {**settings, "epochs": 1, "max_steps_per_epoch": None, "importance_batches": 0}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        save_split(Path(folder) / "train.safetensors", tensors["train"])
        save_split(Path(folder) / "validation.safetensors", tensors["validation"])
        for processes in [1, *args.processes]:
            supernet = build_supernet(spec, dataset, seed=settings["seed"])
            space = resolve_space(space_from_spec(spec["space"], "space"), supernet)
            execution = Execution(processes=processes, device=args.device, precision=args.precision)
            if processes == 1:
                torch.set_num_threads(args.threads)
                device = resolve_device(execution, "--device")
                metrics = train_supernet(
                    supernet,
                    None,
                    space,
                    tensors["train"],
                    tensors["validation"],
                    execution=execution,
                    device=device,
                    **settings,
                )
            else:
                metrics = train_in_processes(
                    "supernet",
                    supernet,
                    execution=execution,
                    train=Path(folder) / "train.safetensors",
                    validation=Path(folder) / "validation.safetensors",
                    checkpoint_dir=Path(folder) / f"p{processes}",
                    settings=settings,
                    where=f"supernets.{args.net}.training",
                    space=space,
                    threads=args.threads,
                )
            epoch = metrics[0]
            samples = len(tensors["train"]["labels"])
            rows.append((processes, max(1, args.threads // processes), samples, epoch["seconds"]))
    print(f"device {args.device}, {args.precision}")
    print("| processes | threads each | samples | seconds | samples/s | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for processes, threads, samples, seconds in rows:
        rate, speedup = samples / seconds, rows[0][3] / seconds
        print(f"| {processes} | {threads} | {samples} | {seconds:.1f} | {rate:.2f} | {speedup:.2f} |")


if __name__ == "__main__":
    main()
