"""Safe loading, atomic outputs and no network, checked over the source and in a real process.

- Nothing unpickles a file: weights only through safetensors or `torch.load(weights_only=True)`, YAML only
  through `safe_load`, no pickle/joblib/dill/`np.load(allow_pickle=True)`/`pd.read_pickle`/TorchScript, and
  every Hugging Face `from_pretrained` is local-only without remote code.
- Every output of simqnas/ and scripts/ is written under a temporary name and renamed (`atomic_path`).
- The network guard the crash-and-resume workflow test runs under (tests/netguard/sitecustomize.py) really
  blocks connections and name lookups, and leaves local sockets working.

Each audit is also run on a snippet that breaks its rule, so it can fail.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    p for folder in ("simqnas", "scripts", "benchmarks") for p in (ROOT / folder).rglob("*.py") if p.is_file()
)
GUARD = Path(__file__).resolve().parent / "netguard"


def dotted(node: ast.AST) -> str:
    """`np.load` for np.load(...), `load` for load(...), '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else f"?.{node.attr}"
    return ""


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


# ------------------------------------------------------------------------------ nothing unpickles

UNPICKLERS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "dill.load",
    "dill.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "shelve.open",
    "marshal.load",
    "marshal.loads",
    "torch.jit.load",
    "torch.package.PackageImporter",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "yaml.load_all",
}
UNPICKLING_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def unsafe_loads(source: str, name: str = "<snippet>") -> list[str]:
    """Calls in `source` that may unpickle (run code from) a file."""
    tree = ast.parse(source, name)
    imported_from: dict[str, str] = {}  # local name -> module it was imported from
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported_from[alias.asname or alias.name] = node.module
                if node.module.split(".")[0] in UNPICKLING_MODULES:
                    problems.append(f"{name}:{node.lineno}: from {node.module} import {alias.name}")
                if node.module.startswith("neural_compressor") and alias.name == "load":
                    problems.append(f"{name}:{node.lineno}: neural_compressor's load (torch.load of a file)")
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func)
        where = f"{name}:{node.lineno}: {func}"
        if func in UNPICKLERS:
            problems.append(where)
        elif func == "torch.load" and not is_true(keyword(node, "weights_only")):
            problems.append(f"{where} without weights_only=True")
        elif func in ("np.load", "numpy.load") and is_true(keyword(node, "allow_pickle")):
            problems.append(f"{where} with allow_pickle=True")
        elif (
            func.endswith(".from_pretrained")
            and imported_from.get(func.split(".")[0], "").startswith("transformers")
            and (
                not is_true(keyword(node, "local_files_only")) or is_true(keyword(node, "trust_remote_code"))
            )
        ):
            problems.append(f"{where} without local_files_only=True (or with trust_remote_code)")
    return problems


def test_nothing_unpickles_a_file():
    assert len(SOURCES) > 30
    problems = [p for path in SOURCES for p in unsafe_loads(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, problems
    for path in [ROOT / "Snakefile", *(ROOT / "rules").glob("*.smk")]:  # Snakemake syntax: no AST
        text = path.read_text()
        assert "pickle" not in text and "torch.load" not in text, path


def test_the_unpickling_audit_finds_every_kind():
    snippet = textwrap.dedent(
        """
        import pickle, joblib, torch, yaml, numpy as np, pandas as pd
        from transformers import AutoTokenizer, AutoModel
        from dill import loads
        from neural_compressor.torch.quantization import load
        pickle.load(open(path, "rb"))
        joblib.load(path)
        torch.load(path)
        torch.load(path, weights_only=False)
        torch.load(path, weights_only=True)
        np.load(path, allow_pickle=True)
        np.load(path)
        pd.read_pickle(path)
        yaml.load(text, Loader=yaml.Loader)
        yaml.safe_load(text)
        torch.jit.load(path)
        AutoModel.from_pretrained(path)
        AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=True)
        AutoTokenizer.from_pretrained(path, local_files_only=True)
        """
    )
    found = unsafe_loads(snippet)
    flagged_lines = sorted({int(p.split(":")[1]) for p in found})
    # every line from 4 (dill) to 18 except the safe ones: torch.load(weights_only=True), np.load(path),
    # yaml.safe_load, and the local-only tokenizer
    assert flagged_lines == [4, 5, 6, 7, 8, 9, 11, 13, 14, 16, 17, 18], found


# ------------------------------------------------------------------------------ atomic outputs

#: calls that write the file named by their first argument (or, for write_text/write_bytes, the receiver)
PATH_WRITERS = {"to_csv", "to_parquet", "to_json", "to_excel", "to_pickle", "savefig"}
#: functions that write a file -> the position of the path among their arguments
FUNCTION_WRITERS = {
    "save_file": 1,
    "np.save": 0,
    "numpy.save": 0,
    "np.savez": 0,
    "torch.save": 1,
    "shutil.copy": 1,
    "shutil.copy2": 1,
    "shutil.copyfile": 1,
}
#: (file, function) -> why it may write directly
ALLOWED = {
    ("simqnas/io.py", "write_text_atomic"): "the temporary file of atomic_path itself",
    ("simqnas/logs.py", "log_to"): "a job's log file is a log, not an output",
    ("simqnas/training.py", "_save_checkpoint"): "files of a temporary folder that is renamed into place",
    ("scripts/table_search_space.py", "<module>"): "the rule's log file",
}


def _root_name(node: ast.AST) -> str | None:
    """`tmp` for tmp, str(tmp), tmp / "x", tmp.with_suffix(...)."""
    while True:
        if isinstance(node, ast.BinOp):
            node = node.left
        elif isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.args[0] if isinstance(node.func, ast.Name) and node.args else node.func
        else:
            return node.id if isinstance(node, ast.Name) else None


def _open_mode(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else keyword(call, "mode")
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"


class _Writes(ast.NodeVisitor):
    def __init__(self, name: str) -> None:
        self.name, self.function, self.atomic, self.problems = name, ["<module>"], set(), []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            opener = dotted(getattr(item.context_expr, "func", None) or item.context_expr)
            if opener.endswith("atomic_path") and isinstance(item.optional_vars, ast.Name):
                self.atomic.add(item.optional_vars.id)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = dotted(node.func)
        method = func.rsplit(".", 1)[-1]
        target: ast.AST | None = None
        if method in PATH_WRITERS and node.args:
            target = node.args[0]
        elif method in ("write_text", "write_bytes") and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif (position := FUNCTION_WRITERS.get(func, FUNCTION_WRITERS.get(method))) is not None:
            target = node.args[position] if len(node.args) > position else None
        elif func == "open" and any(c in _open_mode(node) for c in "wax+"):
            target = node.args[0]
        allowed = (self.name, self.function[-1]) in ALLOWED
        if target is not None and _root_name(target) not in self.atomic and not allowed:
            self.problems.append(f"{self.name}:{node.lineno}: {func} writes outside atomic_path")
        self.generic_visit(node)


def direct_writes(source: str, name: str = "<snippet>") -> list[str]:
    visitor = _Writes(name)
    visitor.visit(ast.parse(source, name))
    return visitor.problems


def test_every_output_is_written_to_a_temporary_name_and_renamed():
    sources = [p for p in SOURCES if not p.is_relative_to(ROOT / "benchmarks")]
    problems = [p for path in sources for p in direct_writes(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, problems


def test_the_atomic_write_audit_finds_direct_writes():
    snippet = textwrap.dedent(
        """
        def write(frame, figure, state, path, out):
            frame.to_csv(path, index=False)
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False)
                save_file(state, str(tmp))
            figure.savefig(out / "fig.png")
            save_file(state, str(path))
            (out / "x.json").write_text("{}")
            text = frame.to_csv(index=False)
            with open(path, "w") as f:
                f.write(text)
            with open(path) as f:
                f.read()
            torch.save(state, path)
        """
    )
    flagged = sorted(int(p.split(":")[1]) for p in direct_writes(snippet))
    assert flagged == [3, 7, 8, 9, 11, 15], direct_writes(snippet)


# ------------------------------------------------------------------------------ the network guard

GUARD_PROBE = """
import socket, sys, urllib.request
import sitecustomize
print("guard", sitecustomize.__file__)
attempts = {
    "ip": lambda: socket.create_connection(("192.0.2.1", 80), timeout=2),
    "name": lambda: socket.create_connection(("example.com", 443), timeout=2),
    "url": lambda: urllib.request.urlopen("https://huggingface.co/api/models", timeout=2),
    "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(name, "REACHED")
    except OSError as error:
        print(name, "blocked" if "blocked by tests/netguard" in str(error) else f"other: {error!r}")
a, b = socket.socketpair()
a.sendall(b"x")
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
socket.create_connection(server.getsockname(), timeout=2).close()
print("local", b.recv(1).decode(), "loopback ok")
"""


def test_network_guard_blocks_every_way_out_and_keeps_local_sockets(tmp_path: Path):
    log = tmp_path / "netguard.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
        "SIMQNAS_NETGUARD_LOG": str(log),
    }
    result = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"guard {GUARD / 'sitecustomize.py'}"
    assert lines[1:] == ["ip blocked", "name blocked", "url blocked", "udp blocked", "local x loopback ok"]
    attempts = log.read_text().splitlines()
    assert len(attempts) == 4, attempts
    assert "connect to ('192.0.2.1', 80)" in attempts[0] and "name lookup of 'example.com'" in attempts[1]


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_network_guard_sets_hugging_face_offline(variable: str):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(GUARD)
    code = f"import os; print(os.environ['{variable}'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "1", result.stderr
