"""Mutation testing of the pure modules with mutmut 3: `make mutation`.

mutmut copies a package's `src/` into `mutants/`, rewrites each function of the modules
it mutates into a trampoline that runs the original or one mutant (picked by an
environment variable), puts `mutants/src` first on sys.path (ahead of the editable
install) and, per mutant, runs only the unit tests that reached the function. It needs
the package's `src/` and `tests/` side by side under the folder it runs in, so each
package gets a work folder in .mutation/ holding links to them and the configuration
below; nothing is written into the packages.

mutmut switches a mutant on when its function is called, so a function that runs while
its module is imported (the knob parsers are made then) keeps its original behaviour in
that run. Each survivor not listed as equivalent is therefore run again in a fresh
process, against a copy of the package's source with the mutant written into it (the
one check that needs no trampoline); the package's tests decide again.

A mutant counts as killed when a test fails (or it times out); as survived when the
tests pass or no test reaches it. Survivors judged equivalent (no test could tell them
from the original) are listed with the reason in mutation/equivalent.md, each with the
mutated line as mutmut shows it: an entry whose line no longer matches is stale and
does not count. The score is killed / (mutants - equivalents), per module; the run
fails when a module is below MINIMUM_SCORE.

    python mutation/run.py                     # every package
    python mutation/run.py platform            # one package
    python mutation/run.py --show-survivors    # also print each counted survivor's diff
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "mutation" / "equivalent.md"
MINIMUM_SCORE = 90.0


@dataclass(frozen=True)
class Package:
    name: str
    folder: str  # relative to the repository, holding src/ and tests/
    modules: tuple[str, ...]  # relative to the folder: the pure modules to mutate
    tests: tuple[str, ...]  # relative to the folder: their unit tests (never integration or e2e)
    # Repository folders a test finds two levels above its file (test_resources.py loads manifests/app).
    links: tuple[str, ...] = ()


PACKAGES = (
    Package(
        "platform",
        "platform",
        modules=(
            "src/knit/autoscaling/kpa.py",
            "src/knit/autoscaling/scaler.py",
            "src/knit/autoscaling/knobs.py",
            "src/knit/autoscaling/schedule.py",
            "src/knit/autoscaling/hpa.py",
            "src/knit/autoscaling/metrics.py",
            "src/knit/serving/state.py",
            "src/knit/serving/traffic.py",
            "src/knit/serving/revisions.py",
            "src/knit/gateway/routing.py",
            "src/knit/eventing/filters.py",
            "src/knit/eventing/delivery.py",
            "src/knit/eventing/conversion.py",
            "src/knit/admission.py",
            "src/knit/resources/model.py",
        ),
        tests=(
            "tests/test_autoscaling_hpa.py",
            "tests/test_autoscaling_knobs.py",
            "tests/test_autoscaling_knobs_boundaries.py",
            "tests/test_autoscaling_kpa.py",
            "tests/test_autoscaling_metrics.py",
            "tests/test_autoscaling_scaler.py",
            "tests/test_autoscaling_schedule.py",
            "tests/test_autoscaling_simulate.py",
            "tests/test_serving.py",
            "tests/test_serving_state.py",
            "tests/test_serving_boundaries.py",
            "tests/test_gateway_routing.py",
            "tests/test_eventing_filters.py",
            "tests/test_delivery.py",
            "tests/test_delivery_boundaries.py",
            "tests/test_conversion.py",
            "tests/test_conversion_boundaries.py",
            "tests/test_resources.py",
            "tests/test_resources_boundaries.py",
            "tests/test_admission.py",
            "tests/test_control_core.py",
            "tests/test_control_status.py",
        ),
        links=("manifests",),
    ),
    Package(
        "danmaku-events",
        "apps/danmaku-events",
        modules=("src/danmaku_events/comment.py",),
        tests=("tests/test_comment.py", "tests/test_comment_boundaries.py"),
    ),
    Package(
        "danmaku-processor",
        "apps/danmaku-processor",
        modules=("src/danmaku_processor/moderation.py",),
        tests=("tests/test_moderation.py",),
    ),
)

# mutmut's exit codes (mutmut.stats.status_by_exit_code): what counts as a kill.
KILLED = {1, 3, 24, -24, 152, 255, 36, 37, -9, -11}  # test failed, pytest error, timeout, type check, crash
NOT_RUN = {None, 34}  # not checked, skipped: the run did not finish

PYPROJECT = """\
# Written by mutation/run.py for mutmut; edit PACKAGES there, not this file.
[tool.mutmut]
source_paths = ["src"]
only_mutate = {modules}
pytest_add_cli_args_test_selection = {tests}
pytest_add_cli_args = ["-m", "not integration and not e2e", "-p", "no:cacheprovider"]

[tool.pytest.ini_options]
addopts = "--import-mode=importlib --strict-markers"
timeout = 180
filterwarnings = ["ignore:.*importlib.resources.*:DeprecationWarning"]
markers = ["integration: starts real processes", "e2e: drives a real browser"]
"""


def _toml_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items))


def prepare(package: Package) -> Path:
    """A fresh work folder: links to the package's src/ and tests/, and mutmut's configuration."""
    work = WORK / package.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("src", "tests"):
        (work / name).symlink_to(ROOT / package.folder / name, target_is_directory=True)
    for name in package.links:
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    text = PYPROJECT.format(modules=_toml_list(package.modules), tests=_toml_list(package.tests))
    (work / "pyproject.toml").write_text(text)
    return work


def run_mutmut(package: Package, work: Path) -> float:
    """Run mutmut in the work folder (niced: it shares the machine); its output goes to mutmut.log."""
    mutmut = Path(sys.executable).parent / "mutmut"
    started = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        command = ["nice", "-n", "19", str(mutmut), "run", "--max-children", str(os.cpu_count() or 2)]
        status = subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        tail = (work / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut failed for {package.name} (exit {status}); end of {work / 'mutmut.log'}:\n{tail}")
    return time.monotonic() - started


def _module_of(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def results(package: Package, work: Path) -> dict[str, dict[str, int | None]]:
    """module -> {mutant name: mutmut exit code} from mutmut's .meta files."""
    found = {}
    for path in package.modules:
        meta = json.loads((work / "mutants" / (path + ".meta")).read_text())
        found[_module_of(path)] = meta["exit_code_by_key"]
    return found


@dataclass(frozen=True)
class Equivalent:
    mutant: str
    line: str  # the mutated line, stripped, as mutmut's diff shows it after "+"
    reason: str


_ENTRY = re.compile(r"^- `(?P<mutant>[^`]+)`: `(?P<line>.*)` — (?P<reason>.+)$")


def read_equivalents() -> dict[str, Equivalent]:
    entries = {}
    for number, text in enumerate(EQUIVALENTS.read_text().splitlines(), start=1):
        if text.startswith("- `"):
            match = _ENTRY.match(text)
            if not match:
                raise SystemExit(f"{EQUIVALENTS}:{number}: write entries as - `mutant`: `mutated line` — reason")
            entries[match["mutant"]] = Equivalent(match["mutant"], match["line"].strip(), match["reason"])
    return entries


def mutated_lines(work: Path, path: str, mutant: str) -> list[str]:
    """The lines mutmut's diff of a mutant adds, stripped."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(work)  # mutmut reads mutants/ relative to where it runs
    try:
        diff = get_diff_for_mutant(mutant, path=Path(path))
    finally:
        os.chdir(here)
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def diff_of(work: Path, path: str, mutant: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(work)
    try:
        return get_diff_for_mutant(mutant, path=Path(path))
    finally:
        os.chdir(here)


def mutant_function(work: Path, path: str, mutant: str):  # -> libcst.FunctionDef
    """The mutated function as mutmut generated it, under its original name."""
    from mutmut.mutation.diff_apply import read_functions_from_index, read_mutant_function, read_mutants_module

    here = os.getcwd()
    os.chdir(work)
    try:
        functions = read_functions_from_index(mutant, Path(path))
        return functions[1] if functions else read_mutant_function(read_mutants_module(Path(path)), mutant)
    finally:
        os.chdir(here)


def with_mutant(source: str, mutant: str, function) -> str:
    """`source` with the function (or method) of `mutant` replaced by the mutated `function`."""
    import libcst as cst
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    name, class_name = orig_function_and_class_names_from_key(mutant)

    class Swap(cst.CSTTransformer):
        def __init__(self) -> None:
            self.classes: list[str] = []
            self.depth = 0  # functions we are inside of
            self.swapped = 0

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            self.classes.append(node.name.value)

        def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
            self.classes.pop()
            return updated

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.depth += 1

        def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
            self.depth -= 1
            owner = self.classes[-1] if self.classes else None
            if self.depth or original.name.value != name or owner != class_name:
                return updated
            self.swapped += 1
            return updated.with_changes(params=function.params, body=function.body, returns=function.returns)

    swap = Swap()
    changed = cst.parse_module(source).visit(swap)
    if swap.swapped != 1:
        raise SystemExit(f"{mutant}: found {swap.swapped} functions to replace in the source, not 1")
    return changed.code


def recheck(package: Package, work: Path, survivors: list[tuple[str, str]]) -> set[str]:
    """The survivors (path, mutant) that the package's tests kill when the mutant is written into a
    copy of the source and the tests run in a fresh process."""
    copy = work / "recheck"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ROOT / package.folder / "src", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    tests = [str(ROOT / package.folder / test) for test in package.tests]
    command = ["nice", "-n", "19", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += ["-m", "not integration and not e2e", *tests]
    environment = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    # The copy must shadow the editable install, or every mutant would survive unnoticed.
    top = package.modules[0].split("/")[1]
    probe = [sys.executable, "-c", f"import {top}; print({top}.__file__)"]
    imported = subprocess.run(probe, env=environment, capture_output=True, text=True).stdout.strip()
    if not imported.startswith(str(copy)):
        raise SystemExit(f"{package.name}: the tests would import {top} from {imported or '?'}, not from {copy}")
    killed = set()
    for path, mutant in survivors:
        target = copy / path.removeprefix("src/")
        original = target.read_text()
        target.write_text(with_mutant(original, mutant, mutant_function(work, path, mutant)))
        try:
            result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=600)
        finally:
            target.write_text(original)
        if result.returncode != 0:
            killed.add(mutant)
    return killed


@dataclass
class Score:
    module: str
    mutants: int = 0
    killed: int = 0
    survived: int = 0
    equivalents: int = 0

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalents
        return 100.0 * self.killed / counted if counted else 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="*", help=f"of {', '.join(p.name for p in PACKAGES)} (default: all)")
    parser.add_argument("--show-survivors", action="store_true", help="print the diff of each counted survivor")
    parser.add_argument("--reuse", action="store_true", help="score the last run's results without running mutmut")
    options = parser.parse_args()
    unknown = set(options.packages) - {p.name for p in PACKAGES}
    if unknown:
        parser.error(f"unknown package {', '.join(sorted(unknown))}; known: {', '.join(p.name for p in PACKAGES)}")
    chosen = [p for p in PACKAGES if not options.packages or p.name in options.packages]

    equivalents = read_equivalents()
    scores: list[Score] = []
    stale: list[str] = []
    survivors: list[tuple[str, str]] = []  # (mutant, diff)
    started = time.monotonic()
    for package in chosen:
        work = WORK / package.name
        if not options.reuse:
            work = prepare(package)
            seconds = run_mutmut(package, work)
            print(f"{package.name}: mutmut ran in {seconds:.0f}s (log: {work / 'mutmut.log'})", flush=True)
        found = results(package, work)
        unlisted: list[tuple[str, str]] = []  # (path, mutant): survivors to run again
        for path, (module, codes) in zip(package.modules, found.items(), strict=True):
            not_run = [name for name, code in codes.items() if code in NOT_RUN]
            if not_run:
                raise SystemExit(f"{module}: {len(not_run)} mutants were not run, e.g. {not_run[0]}")
            for mutant, code in sorted(codes.items()):
                listed = equivalents.get(mutant)
                if code not in KILLED and not (listed and listed.line in mutated_lines(work, path, mutant)):
                    unlisted.append((path, mutant))
        rechecked = recheck(package, work, unlisted) if unlisted else set()
        if unlisted:
            print(
                f"{package.name}: {len(rechecked)} of {len(unlisted)} survivors killed when run again on the "
                "mutated source",
                flush=True,
            )
        for path, (module, codes) in zip(package.modules, found.items(), strict=True):
            score = Score(module, mutants=len(codes))
            for mutant, code in sorted(codes.items()):
                if code in KILLED or mutant in rechecked:
                    score.killed += 1
                    continue
                score.survived += 1
                listed = equivalents.get(mutant)
                if listed and listed.line in mutated_lines(work, path, mutant):
                    score.equivalents += 1
                    continue
                if listed:
                    stale.append(f"{mutant}: listed as `{listed.line}`, but the mutant now changes something else")
                survivors.append((mutant, diff_of(work, path, mutant) if options.show_survivors else ""))
            scores.append(score)

    if options.show_survivors and survivors:
        print("\nSurvivors not listed as equivalent:")
        for mutant, diff in survivors:
            print(f"\n# {mutant}\n{diff}")
    elif survivors:
        print(f"\n{len(survivors)} survivors not listed as equivalent (--show-survivors prints their diffs):")
        for mutant, _ in survivors:
            print(f"  {mutant}")
    for line in stale:
        print(f"stale entry in {EQUIVALENTS.relative_to(ROOT)}: {line}")

    width = max(len(s.module) for s in scores)
    print(f"\n{'module':<{width}}  mutants  killed  survived  equivalent  score")
    fields = ("mutants", "killed", "survived", "equivalents")
    total = Score("total", *(sum(getattr(s, name) for s in scores) for name in fields))
    for s in [*scores, total]:
        flag = "" if s is total or s.score >= MINIMUM_SCORE else f"  < {MINIMUM_SCORE:g}%"
        counts = f"{s.mutants:7}  {s.killed:6}  {s.survived:8}  {s.equivalents:10}"
        print(f"{s.module:<{width}}  {counts}  {s.score:5.1f}%{flag}")
    print(f"({time.monotonic() - started:.0f}s)")
    below = [s.module for s in scores if s.score < MINIMUM_SCORE]
    if below:
        print(f"below {MINIMUM_SCORE:g}% (killed / (mutants - equivalents)): {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
