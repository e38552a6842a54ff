"""Command line: `python -m simqnas COMMAND ...` (see --help)."""

from __future__ import annotations

import argparse
import json
import sys

from simqnas.space import EXACT_COUNT_BITS, SearchSpace, SpaceError, count_text

#: exit status of a command given an invalid file (argparse uses the same for invalid arguments)
EXIT_INVALID = 2


def _space_size(args: argparse.Namespace) -> None:
    space = SearchSpace.from_yaml(args.file, supernet=args.supernet)
    # counts beyond ~900 digits as text ("about 1.2e6020"): Python refuses to print integers of 4,300 digits
    sizes = {
        name: n if n.bit_length() <= EXACT_COUNT_BITS else count_text(n) for name, n in space.sizes().items()
    }
    print(json.dumps(sizes))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simqnas", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    size = commands.add_parser(
        "space-size",
        help="exact nominal and active search-space sizes as JSON",
        description="Print the exact sizes (arch, quant, joint, active_*) of a search space as JSON.",
    )
    size.add_argument("file", help="a space YAML, or a workflow config with supernets: {NAME: {space: ...}}")
    size.add_argument("--supernet", metavar="NAME", help="which super-network of a workflow config")
    size.set_defaults(run=_space_size)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except SpaceError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return EXIT_INVALID
    return 0


if __name__ == "__main__":
    sys.exit(main())
