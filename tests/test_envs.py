"""The per-rule-group conda environments (envs/<group>.yaml) against the lock and the workflow's rules.

Users of `snakemake --sdm conda` must get what CI tested: every env pins exactly the lock's versions, holds
the transitive closure of its direct requirements, and covers what its rules' scripts import; every rule
that runs code names an existing env.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import platform
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / "envs"
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
# directives that run code (and so need software); `run:` cannot use conda
CODE_DIRECTIVES = ("script", "shell", "wrapper", "notebook")


def load_freeze():
    spec = importlib.util.spec_from_file_location("envs_freeze", ENVS / "freeze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


freeze = load_freeze()
LOCK = freeze.parse_lock((ENVS / "requirements.lock").read_text())


# the env files are generated on, and their closures hold for, the CI platform (envs/freeze.py records it)
on_lock_platform = pytest.mark.skipif(
    (sys.platform, platform.machine(), sys.version_info[:2]) != ("linux", "x86_64", (3, 11)),
    reason="the closures are computed for Python 3.11 on linux-x86_64",
)


@cache
def env_pins(group: str) -> dict[str, str]:
    """canonical name -> version of an env file's pip list (pins checked to be exact)."""
    env = yaml.safe_load((ENVS / f"{group}.yaml").read_text())
    pip = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    assert len(pip) == 1, f"{group}.yaml: expected one pip: list"
    pins = {}
    for line in pip[0]:
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{group}.yaml: {line!r} is no exact pin"
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def test_one_env_file_per_group():
    assert {p.stem for p in ENVS.glob("*.yaml")} == set(freeze.GROUPS)


@pytest.mark.parametrize("group", sorted(freeze.GROUPS))
def test_env_layout(group):
    env = yaml.safe_load((ENVS / f"{group}.yaml").read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda = [dep for dep in env["dependencies"] if isinstance(dep, str)]
    assert conda == ["python=3.11", "pip"]


@pytest.mark.parametrize("group", sorted(freeze.GROUPS))
def test_env_pins_what_the_lock_pins(group):
    pins = env_pins(group)
    absent = sorted(set(pins) - LOCK.keys())
    assert not absent, f"{group}.yaml lists packages the lock does not: {absent}"
    differ = {name: (version, LOCK[name][1]) for name, version in pins.items() if version != LOCK[name][1]}
    assert not differ, f"{group}.yaml: (env, lock) versions differ: {differ}"


@on_lock_platform
@pytest.mark.parametrize("group", sorted(freeze.GROUPS))
def test_env_is_the_closure_of_its_direct_requirements(group):
    """Read from the installed metadata (the venv built from the lock): nothing missing, nothing extra."""
    closure = freeze.closure(freeze.requirements(group))
    pins = set(env_pins(group))
    assert not closure - pins, f"{group}.yaml misses {sorted(closure - pins)} (run envs/freeze.py)"
    assert not pins - closure, f"{group}.yaml pins {sorted(pins - closure)}, needed by nothing"


@on_lock_platform
@pytest.mark.parametrize("group", sorted(freeze.GROUPS))
def test_env_file_is_generated(group):
    """Hand edits, or GROUPS edited without re-running envs/freeze.py, show here."""
    expected = freeze.env_file(group, LOCK, freeze.installed())
    assert (ENVS / f"{group}.yaml").read_text() == expected, f"envs/{group}.yaml is stale: run envs/freeze.py"


def test_lock_has_no_data_packages_and_no_local_versions():
    data = freeze.requirement_names(ENVS / "data-packages.txt")
    assert not data & LOCK.keys()
    assert LOCK["torch"][1] == "2.13.0"
    assert not [name for name, (_, version) in LOCK.items() if "+" in version]


# ---- the rules


def directive(block: str, name: str) -> str | None:
    """A directive's value, on its own line or the next (snakefmt style); quotes stripped."""
    match = re.search(rf"^\s+{name}:[ \t]*(.*)$", block, re.MULTILINE)
    if match is None:
        return None
    value = match.group(1).strip() or block[match.end() :].lstrip().splitlines()[0].strip()
    return value.strip("\"'")


def rules() -> list[tuple[Path, str, str]]:
    """(file, name, text) of every rule and checkpoint of the workflow."""
    found = []
    for path in RULE_FILES:
        text = path.read_text()
        heads = list(re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, re.MULTILINE))
        for head in heads:
            # the block runs to the next line that starts at column 0 (a comment, def, rule, ...)
            end = re.search(r"^\S", text[head.end() :], re.MULTILINE)
            block = text[head.end() : head.end() + end.start() if end else len(text)]
            found.append((path, head.group(1), block))
    return found


def code_rules() -> list[tuple[Path, str, str]]:
    return [rule for rule in rules() if any(directive(rule[2], d) for d in CODE_DIRECTIVES)]


def rule_params(only_scripts: bool = False) -> list:
    return [
        pytest.param(*rule, id=rule[1])
        for rule in code_rules()
        if not only_scripts or directive(rule[2], "script")
    ]


def test_rules_found():
    names = {name for _, name, _ in code_rules()}
    assert {"prepare_text_data", "propose", "evaluate_shard", "figures"} <= names


@pytest.mark.parametrize("path,name,block", rule_params())
def test_rule_has_an_existing_conda_env(path, name, block):
    conda = directive(block, "conda")
    assert conda, f"rule {name} ({path.name}) has no conda: directive"
    env = (path.parent / conda).resolve()  # relative to the file that defines the rule
    assert env.parent == ENVS and env.stem in freeze.GROUPS, f"rule {name}: {conda} is no envs/<group>.yaml"
    assert env.is_file()


# ---- what the rules' scripts import, transitively through simqnas


def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _outside_functions(tree: ast.AST) -> list[ast.AST]:
    """The nodes that run when the module is imported (function bodies and `if TYPE_CHECKING:` blocks do
    not)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return nodes


def imported_names(path: Path, module: str, module_level: bool = False) -> set[str]:
    """Every module name an `import` in the file may load (function-level imports included, unless only
    what importing the module runs is asked for)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    tree = ast.parse(path.read_text())
    for node in _outside_functions(tree) if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def third_party_imports(
    script: Path | None = None, modules: tuple[str, ...] = (), module_level: bool = False
) -> set[str]:
    """Top-level names of the non-stdlib modules a script (or simqnas modules) import, through simqnas."""
    seen, found, todo = set(), set(), [(script, "__main__")] if script else []

    def visit(name: str) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            sub = ".".join(parts[:i])
            if sub not in seen and (file := module_file(sub)):
                seen.add(sub)
                todo.append((file, sub))

    for module in modules:
        visit(module)
    while todo:
        path, module = todo.pop()
        for name in imported_names(path, module, module_level):
            top = name.split(".")[0]
            if top == "simqnas":
                visit(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    # `snakemake` is injected by the script directive, from Snakemake's own search path
    return found - {"snakemake"}


def workflow_imports() -> set[str]:
    """What the simqnas modules imported by the Snakefile and rules/*.smk import: a job unpickles its params,
    so it imports the modules of any workflow object passed as one (a SearchRun: simqnas.config). Only what
    importing them runs counts: their functions (check_config reading data files) run in the Snakefile, in
    the main environment, never in a rule's."""
    pattern = re.compile(r"^(?:from\s+(simqnas[\w.]*)\s+import|import\s+(simqnas[\w.]*))", re.MULTILINE)
    modules = {m.group(1) or m.group(2) for path in RULE_FILES for m in pattern.finditer(path.read_text())}
    assert "simqnas.config" in modules
    return third_party_imports(modules=tuple(sorted(modules)), module_level=True)


def test_workflow_requirements_cover_the_workflow_imports():
    providers = importlib.metadata.packages_distributions()
    required = freeze.closure(freeze.WORKFLOW_REQUIRES)
    for top in workflow_imports():
        assert {canonicalize_name(d) for d in providers.get(top, [])} & required, top


@pytest.mark.parametrize("path,name,block", rule_params(only_scripts=True))
def test_rule_env_covers_what_its_script_imports(path, name, block):
    conda, script = directive(block, "conda"), directive(block, "script")
    if not conda:
        pytest.skip("no conda directive (test_rule_has_an_existing_conda_env fails)")
    group = Path(conda).stem
    providers = importlib.metadata.packages_distributions()
    pins = env_pins(group)
    missing = {}
    for top in sorted(third_party_imports((path.parent / script).resolve()) | workflow_imports()):
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        assert dists, f"rule {name}: {script} imports {top}, which no installed distribution provides"
        if not dists & pins.keys():
            missing[top] = sorted(dists)
    assert not missing, f"rule {name} imports {missing}, absent from envs/{group}.yaml (edit envs/freeze.py)"
