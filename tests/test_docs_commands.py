"""Every `python ...` command the documentation shows still parses (a guard against doc rot).

The commands are taken from README.md, CONTRIBUTING.md, results/README.md and docs/*.md: lines of fenced
(```) and indented code blocks, joined across trailing backslashes, and inline `code` spans. Each is
parsed by its command's own `build_parser()` without running it: `python -m nets.train` also builds its
TrainConfig, `python -m nets.sweep` its SweepConfig and plan (and nets.train's checks of every run),
`python -m figures NAME...` checks the names against figures.registry. Nothing trains, draws or compiles.

The Makefile's recipes are checked the same way, and every `make TARGET` the docs show must be a target.

Rules: options must be spelled out as the parser knows them (argparse would accept an abbreviation, which
a new option can make ambiguous). A usage pattern (`...`, `<x>`, `a|b`, a metavar such as N or FILE.h5)
is not parsed, but its options, subcommand and figure names must exist; one whose only pattern is
optional groups (`[--threads 1]`) is parsed with every option given. Inline spans are often mentions of
one flag (`python -m nets.train --out`) rather than whole commands: when such a span lacks only required
arguments (or the value of its last flag), it gets the same names-only check; any other parse error fails.
Shell variables become a temporary path (SLURM_ARRAY_TASK_ID: 0). A sweep is planned in a temporary
directory and, when its --data file is not here, checked against nets.train with --data synthetic.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import re
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = ("README.md", "CONTRIBUTING.md", "results/README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))

#: `python -m MODULE` -> "module:function" returning the command's argparse parser, for commands whose
#: parser does not sit in MODULE itself (a package's __main__ that runs on import, or a thin wrapper).
PARSER_OF_MODULE = {
    "figures": "figures.cli:build_parser",
    "nets.data": "nets.data.__main__:build_parser",
    "nets.sweep": "nets.sweep_cli:build_parser",
}
#: modules of other projects whose command lines are checked only for the paths they name
EXTERNAL_MODULES = {"pytest", "pip"}
#: shell variables in commands and what they stand for here (the rest become a temporary path)
NUMERIC_VARIABLES = {"SLURM_ARRAY_TASK_ID": "0"}

_ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
#: usage patterns: `...`, `<x>`, `[--optional]`, `a|b`, and metavars such as N, SIGMA, FILE.h5 as words
_PLACEHOLDER = re.compile(r"\.\.\.|<[^>]*>|\[|\]|\w\|\w|\|\w|(?<![\w/.${-])[A-Z][A-Z0-9_]*(\.\w+)?(?![\w/-])")


@dataclass(frozen=True)
class DocCommand:
    """One command found in the documentation.

    Attributes:
        path: the document, relative to the repository root.
        line: 1-based line where the command starts.
        text: the command as written (continuations joined, comment removed).
        inline: True for an inline `code` span (which may mention a flag without the rest of the command).
    """

    path: str
    line: int
    text: str
    inline: bool

    @property
    def id(self) -> str:
        """Readable pytest id: file:line and the start of the command."""
        short = self.text if len(self.text) <= 70 else self.text[:67] + "..."
        return f"{self.path}:{self.line}: {short}"


def _strip_prefixes(text: str) -> str | None:
    """The command from `python`/`python3`/`torchrun` on, after `$ `, `time` and VAR=value prefixes; else None."""
    words = text.strip().split()
    while words and (words[0] in ("$", "time") or _ENV_ASSIGNMENT.fullmatch(words[0])):
        words = words[1:]
    if not words or words[0] not in ("python", "python3", "torchrun"):
        return None
    if words[0] != "torchrun" and not (words[1:2] == ["-c"] or words[1:2] and words[1].endswith(".py") or
                                       words[1:2] == ["-m"] and re.fullmatch(r"[\w.]+", " ".join(words[2:3]))):
        return None  # e.g. the message `python -m landscape.plot: error: ...`
    return " ".join(words)


def _command_part(text: str) -> str:
    """Drop a trailing ` # comment` and anything after a shell pipe or `;`/`&&`."""
    text = re.split(r"\s#\s|\s#$", text, maxsplit=1)[0]
    text = re.split(r"\s\|\s|\s;\s|\s&&\s", text, maxsplit=1)[0]
    return text.strip()


def _code_block_lines(lines: list[str]) -> Iterator[tuple[int, str]]:
    """(1-based line, text) of lines inside ``` fences or indented by 4+ spaces after a blank line."""
    fenced = False
    indented = False
    previous_blank = True
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            previous_blank = False
            continue
        if fenced:
            yield number, line
            continue
        if line.startswith("    ") and stripped and (indented or previous_blank):
            indented = True
            yield number, line
        elif stripped:
            indented = False
        previous_blank = not stripped


def _prose(lines: list[str]) -> list[str]:
    """The lines with code blocks blanked out (line numbers kept), for the inline spans."""
    blanked = list(lines)
    for number, _ in _code_block_lines(lines):
        blanked[number - 1] = ""
    for number, line in enumerate(lines, start=1):
        if line.strip().startswith("```"):
            blanked[number - 1] = ""
    return blanked


def _indent(line: str) -> int:
    """Leading spaces of a line."""
    return len(line) - len(line.lstrip())


def extract_commands(path: str, root: Path = ROOT) -> list[DocCommand]:
    """Every `python ...` / `torchrun ...` command of one document, code blocks first, then inline spans."""
    lines = (root / path).read_text(encoding="utf-8").splitlines()
    found: list[DocCommand] = []
    block = dict(_code_block_lines(lines))
    numbers = sorted(block)
    i = 0
    while i < len(numbers):
        start = numbers[i]
        text = block[start].rstrip()
        indent = _indent(text)
        usage = "[" in text  # a usage pattern `--model M [--noise K ...` goes on over deeper-indented lines
        while i + 1 < len(numbers) and numbers[i + 1] == numbers[i] + 1 and (
                text.endswith("\\") or usage and _indent(block[numbers[i + 1]]) > indent):
            i += 1
            text = text.removesuffix("\\").rstrip() + " " + block[numbers[i]].strip()
        i += 1
        command = _strip_prefixes(_command_part(text))
        if command is None and (hint := re.search(r":\s+(python3? -m \S.*)$", text)):
            command = _strip_prefixes(_command_part(hint.group(1)))  # a printed hint `...: python -m ...`
        if command is not None:
            found.append(DocCommand(path, start, command, inline=False))
    prose = "\n".join(_prose(lines))
    for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        command = _strip_prefixes(_command_part(" ".join(match.group(1).split())))
        if command is not None:
            found.append(DocCommand(path, prose.count("\n", 0, match.start()) + 1, command, inline=True))
    return found


def makefile_commands() -> list[DocCommand]:
    """The python commands of the Makefile's recipes (what `make demo`, `make figures`, ... run)."""
    found = []
    for number, line in enumerate((ROOT / "Makefile").read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("\t"):
            command = _strip_prefixes(_command_part(re.sub(r"\$\((PY|PYTHON)\)", "python", line)))
            if command is not None:
                found.append(DocCommand("Makefile", number, command, inline=False))
    return found


def make_targets_mentioned() -> list[tuple[str, int, str]]:
    """(file, line, target) of every `make TARGET` in the documentation's code (blocks and inline spans)."""
    found = []
    for path in DOC_FILES:
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        found += [(path, number, match.group(1)) for number, line in _code_block_lines(lines)
                  if (match := re.match(r"\s*make ([a-z][\w-]*)", line))]
        found += [(path, number, target) for number, line in enumerate(_prose(lines), start=1)
                  for target in re.findall(r"`make ([a-z][\w-]*)", line)]
    return found


def all_commands() -> list[DocCommand]:
    """The commands of every documentation file and of the Makefile."""
    return [command for path in DOC_FILES for command in extract_commands(path)] + makefile_commands()


def is_placeholder(command: DocCommand) -> bool:
    """True for usage patterns rather than commands: `...`, `<x>`, `[--opt]`, `a|b`, metavars (N, DIR)."""
    return bool(_PLACEHOLDER.search(command.text))


COMMANDS = all_commands()
CHECKED = [c for c in COMMANDS if not is_placeholder(c)]


# ---------------------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Target:
    """What a command runs: `python -m MODULE`, `python SCRIPT.py` or `python -c CODE`, and its arguments."""

    kind: str  # "module", "script" or "code"
    name: str
    argv: tuple[str, ...]


def split_command(command: DocCommand, variables: dict[str, str]) -> Target:
    """The target and argv of a command; `$VAR`/`${VAR}` replaced; torchrun's own options dropped."""
    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return NUMERIC_VARIABLES.get(name, variables.get(name, variables["*"]))

    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, command.text)
    words = shlex.split(text)
    while words[0] not in ("python", "python3", "torchrun"):
        words = words[1:]
    launcher, rest = words[0], words[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "-m":
            return Target("module", rest[i + 1], tuple(rest[i + 2:]))
        if word == "-c":
            return Target("code", rest[i + 1], ())
        if word.endswith(".py"):
            return Target("script", word, tuple(rest[i + 1:]))
        if launcher == "torchrun" and word.startswith("--") and "=" not in word and i + 1 < len(rest) \
                and not rest[i + 1].startswith("-") and word != "--standalone":
            i += 2  # a torchrun option with its value, e.g. --nproc_per_node 4
        else:
            i += 1
    raise AssertionError(f"{command.id}: no -m MODULE, -c CODE or SCRIPT.py after {launcher}")


def _load(spec: str) -> Callable[[], argparse.ArgumentParser]:
    """The function named by "module:function"."""
    module_name, function = spec.split(":")
    return getattr(importlib.import_module(module_name), function)


def parser_factory(target: Target, where: str) -> Callable[[], argparse.ArgumentParser]:
    """The `build_parser` of a module or script; fails the test when the command has none."""
    if target.kind == "module":
        if importlib.util.find_spec(target.name) is None:
            pytest.fail(f"{where}: no module {target.name!r}")
        spec = PARSER_OF_MODULE.get(target.name, f"{target.name}:build_parser")
        try:
            return _load(spec)
        except AttributeError:
            pytest.fail(f"{where}: {target.name} has no build_parser() to check the command with")
    path = ROOT / target.name
    if not path.is_file():
        pytest.fail(f"{where}: no script {target.name}")
    module_name = "_doc_script_" + path.stem
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the scripts run only under `if __name__ == "__main__"`
        sys.modules[module_name] = module
    factory = getattr(sys.modules[module_name], "build_parser", None)
    if factory is None:
        pytest.fail(f"{where}: {target.name} has no build_parser() to check the command with")
    return factory


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    """parser.parse_args(argv) with argparse's exit turned into (None, its message)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(argv), ""
    except SystemExit as exit_:
        return None, err.getvalue().strip() or f"exit status {exit_.code}"


def _all_option_strings(parser: argparse.ArgumentParser) -> tuple[set[str], dict[str, argparse.ArgumentParser]]:
    """The parser's option strings and its subcommands' parsers by name."""
    options = set(parser._option_string_actions)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subparsers.update(action.choices)
    return options, subparsers


def check_names_only(parser: argparse.ArgumentParser, argv: list[str], where: str) -> None:
    """Every `--option` (and subcommand) in argv is spelled exactly as the parser knows it (no abbreviations)."""
    options, subparsers = _all_option_strings(parser)
    if subparsers and argv and not argv[0].startswith("-"):
        if argv[0] not in subparsers:
            pytest.fail(f"{where}: unknown subcommand {argv[0]!r}; the command has {sorted(subparsers)}")
        options |= set(subparsers[argv[0]]._option_string_actions)
    for word in argv:
        option = word.strip("[]").split("=")[0]
        if option.startswith("--") and option not in options:
            pytest.fail(f"{where}: unknown option {option!r} (argparse may accept it as an abbreviation; "
                        "the docs spell options out)")


def _figure_names(names: list[str], where: str, placeholders: bool) -> None:
    """Fail unless every name is a registered figure (or the whole list is `all` / `list`)."""
    from figures import registry

    if names in (["all"], ["list"]):
        return
    for name in names:
        if placeholders and not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            continue  # NAME, ..., NAME|all
        if name not in registry.FIGURES:
            pytest.fail(f"{where}: unknown figure {name!r}; figures.registry has {', '.join(registry.FIGURES)}")


def check_semantics(target: Target, args: argparse.Namespace, tmp_path: Path, where: str) -> None:
    """What the command would check before running, without running it."""
    try:
        if target.name == "figures":
            _figure_names(args.names, where, placeholders=False)
        elif target.name == "nets.train":
            from nets.sweep import check_models_exist
            from nets.train import config_from_args

            config_from_args(args)
            check_models_exist([args.model])
        elif target.name == "nets.sweep":
            _check_sweep(args, tmp_path, where)
        elif target.name in ("nets.models.benchmark", "benchmarks/bench_models.py"):
            from nets.sweep import check_models_exist

            check_models_exist(args.models)
        elif target.name == "benchmarks/gpu_session.py":
            sys.modules["_doc_script_gpu_session"].check_args(args)
    except ValueError as error:
        pytest.fail(f"{where}: {error}")


def _check_sweep(args: argparse.Namespace, tmp_path: Path, where: str) -> None:
    """nets.sweep's checks and dry-run plan, in a temporary sweep directory, with data existing or synthetic."""
    from nets import sweep as lib
    from nets import sweep_run
    from nets.sweep_cli import config_from_args

    config = replace(config_from_args(args), out=tmp_path / "sweep")
    shard_spec = lib.parse_shard(args.shard) if args.shard else None
    if args.parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {args.parallel}")
    plan = sweep_run.plan(config, shard_spec)
    assert plan.runs, f"{where}: the sweep plans no runs"
    data_here = config.data in ("synthetic", "digits") or config.data.startswith("synthetic:")
    lib.check_trainer_accepts(config if data_here else replace(config, data="synthetic"), plan.runs)
    lines = sweep_run.dry_run_lines(plan)
    assert len(lines) == len(plan.runs)
    if "-m" in config.trainer:
        trainer_module = config.trainer[config.trainer.index("-m") + 1]
        assert importlib.util.find_spec(trainer_module) is not None, f"{where}: no trainer module {trainer_module}"


def check_command(command: DocCommand, tmp_path: Path) -> None:
    """The whole check of one documented command (see the module docstring)."""
    where = f"{command.path}:{command.line}: `{command.text}`"
    target = split_command(command, {"*": str(tmp_path / "var")})
    if target.kind == "code":
        compile(target.name, where, "exec")
        return
    if target.kind == "module" and target.name in EXTERNAL_MODULES:
        # importlib.metadata, not importlib.util.find_spec: setuptools' distutils hack answers find_spec("pip")
        # by switching itself off for the whole process, after which torch.compile's C++ build cannot import
        # setuptools (tests/test_train_compile.py, later in the same run, failed that way).
        try:
            importlib.metadata.distribution(target.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{where}: {target.name} is not installed")
        for word in target.argv:
            if word.endswith(".py") or "/" in word:
                assert (ROOT / word.split("::")[0]).exists(), f"{where}: no such path {word}"
        return
    build = parser_factory(target, where)
    placeholders = is_placeholder(command)
    argv = list(target.argv)
    if placeholders and not is_placeholder(replace(command, text=re.sub(r"[][]", "", command.text))):
        placeholders = False  # only optional groups `[--threads 1]`: checked with every option given
        argv = [word for word in (w.strip("[]") for w in argv) if word]
    if placeholders:
        check_names_only(build(), [w for w in argv if w not in ("[", "]")], where)
        if target.name == "figures":
            _figure_names([w for w in argv if not w.startswith("-")][:1] or [], where, placeholders=True)
        return
    check_names_only(build(), argv, where)
    args, message = parse(build(), argv)
    if args is None:
        fragment = command.inline and re.search(r"arguments are required|expected (one|at least one) argument",
                                                message)
        if not fragment:
            pytest.fail(f"{where}: does not parse: {message}")
        if target.name == "figures":
            _figure_names([w for w in argv if not w.startswith("-")], where, placeholders=True)
        return
    check_semantics(target, args, tmp_path, where)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_documented_command_parses(command: DocCommand, tmp_path: Path) -> None:
    """One documented command (its id is file:line: command) parses and passes its CLI's own checks."""
    check_command(command, tmp_path)


MAKE_TARGETS = make_targets_mentioned()


@pytest.mark.parametrize("mention", MAKE_TARGETS, ids=[f"{p}:{n}: make {x}" for p, n, x in MAKE_TARGETS])
def test_documented_make_target_exists(mention: tuple[str, int, str]) -> None:
    """`make TARGET` in the docs names a Makefile target."""
    path, number, target = mention
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert target in targets, f"{path}:{number}: `make {target}` but the Makefile has {targets}"


def test_extractor_finds_the_documented_commands() -> None:
    """Guards the extractor itself: it must find many commands, in every kind of place, from every file."""
    assert len(COMMANDS) >= 60, [c.id for c in COMMANDS]
    assert len(CHECKED) >= 50
    paths = {c.path for c in COMMANDS}
    assert {"README.md", "CONTRIBUTING.md", "results/README.md", "docs/training.md", "docs/experiments.md",
            "docs/benchmarks.md", "docs/landscape.md", "docs/companion.md"} <= paths
    # a fenced block, an indented block with a backslash continuation, a torchrun line, an inline span
    assert any(c.path == "README.md" and not c.inline and c.text == "python -m landscape.plot --eps 0.5 --loss l2"
               for c in COMMANDS)
    sweep = next(c for c in COMMANDS if c.path == "docs/experiments.md" and "--grad-norm-every 10" in c.text)
    assert sweep.text.endswith("--data cifar10.h5 --out results/robust_grad_norms") and not sweep.inline
    assert any(c.text.startswith("torchrun ") and "-m nets.train" in c.text for c in COMMANDS)
    assert any(c.inline and c.text.startswith("python benchmarks/") for c in COMMANDS)
    # the Table 1 sweep of section 2 and the same command in the printed hint `...; produce them with: python ...`
    table1 = [c for c in COMMANDS
              if c.path == "docs/experiments.md" and "--data cifar10.h5 --out" in c.text and c.text.endswith("/table1")]
    assert len(table1) >= 2 and all(c.text.startswith("python -m nets.sweep --models") for c in table1)
    assert any(c.path == "Makefile" and c.text.startswith("python -m landscape.plot") for c in COMMANDS)
    assert {"demo", "test"} <= {target for _, _, target in MAKE_TARGETS}


def test_extractor_rules(tmp_path: Path) -> None:
    """Prefixes, continuations, comments and placeholders, on a small made-up document."""
    doc = tmp_path / "doc.md"
    doc.write_text("intro `python -m figures list` and `make demo`\n\n"
                   "```\nPYTHONPATH=. OMP_NUM_THREADS=1 python -m nets.train --model preresnet8 \\\n"
                   "    --data synthetic --out runs/x   # a comment\nls runs\n```\n\n"
                   "    MPLBACKEND=Agg python3 benchmarks/bench_landscape.py --repeat 3 | tail\n\n"
                   "text `python -m figures NAME|all [--fast]` end\n", encoding="utf-8")
    found = extract_commands("doc.md", root=tmp_path)
    assert [(c.line, c.text, c.inline) for c in found] == [
        (4, "python -m nets.train --model preresnet8 --data synthetic --out runs/x", False),
        (9, "python3 benchmarks/bench_landscape.py --repeat 3", False),
        (1, "python -m figures list", True),
        (11, "python -m figures NAME|all [--fast]", True),
    ]
    assert [is_placeholder(c) for c in found] == [False, False, False, True]
    target = split_command(DocCommand("x.md", 1, "torchrun --standalone --nproc_per_node 4 -m nets.train --model m",
                                      False), {"*": str(tmp_path)})
    assert target == Target("module", "nets.train", ("--model", "m"))


def test_a_stale_flag_fails(tmp_path: Path) -> None:
    """The check is not vacuous: a renamed flag, an unknown figure and a bad sweep value each fail it."""
    for text in ("python -m nets.train --model preresnet8 --data synthetic --out r --epoch 3",
                 "python -m figures table1 no_such_figure",
                 "python -m nets.sweep --models preresnet8 --p 0.9 --data synthetic --out r --lr -1",
                 "python -m nets.train --model no_such_model --data synthetic --out r",
                 "python -m nets.no_such_module --x 1"):
        with pytest.raises(pytest.fail.Exception):
            check_command(DocCommand("x.md", 1, text, inline=False), tmp_path)
    with pytest.raises(pytest.fail.Exception):  # an inline mention must still name a real option
        check_command(DocCommand("x.md", 1, "python -m nets.train --output", inline=True), tmp_path)


def _table_option_cells(path: str) -> str:
    """The first cells of the rows of a document's option tables (`| `--opt X` | meaning |`)."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    return "\n".join(line.split(" | ")[0] for line in lines if line.startswith("| `--"))


def _synopsis(path: str, start: str) -> str:
    """The usage synopsis of a document that begins with `start` (joined over its lines by the extractor)."""
    matches = [c.text for c in extract_commands(path) if c.text.startswith(start)]
    assert len(matches) == 1, f"{path}: {len(matches)} synopses starting {start!r}"
    return matches[0]


#: option references: (document, its option table or synopsis, the CLI's parser, options it may leave out)
OPTION_REFERENCES = [
    ("docs/experiments.md", lambda: _table_option_cells("docs/experiments.md"), "nets.sweep_cli:build_parser",
     {"--help", "--data", "--out", "--no-progress"}),
    ("docs/landscape.md", lambda: _table_option_cells("docs/landscape.md"), "landscape.plot:build_parser", {"--help"}),
    ("docs/training.md", lambda: _synopsis("docs/training.md", "python -m nets.train --model M ["),
     "nets.train:build_parser", {"--help"}),
]


@pytest.mark.parametrize("reference", OPTION_REFERENCES,
                         ids=[f"{r[0]}: {r[2].split(':')[0]}" for r in OPTION_REFERENCES])
def test_option_reference_matches_the_parser(reference: tuple[str, Callable[[], str], str, set[str]]) -> None:
    """An option table or usage synopsis names only existing options, and every option but the exempt ones."""
    path, text, spec, exempt = reference
    documented = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text()))
    assert len(documented) >= 5, f"{path}: found only {documented}"
    known = {option for option in _load(spec)()._option_string_actions if option.startswith("--")}
    assert documented <= known, f"{path}: documents options that do not exist: {sorted(documented - known)}"
    assert known - exempt <= documented, f"{path}: does not document {sorted(known - exempt - documented)}"
