"""The `h3-jax` command: train a preset, evaluate a run, list the presets.

    h3-jax train [PRESET] [--workdir DIR] [--resume] [--section.field=value ...]
    h3-jax eval --workdir DIR [--checkpoint latest|best|STEP]
    h3-jax presets
    h3-jax launch -n N train|eval ...   (N processes on this machine, as one run)

Exit status: 0 done; 1 the loss became NaN/Inf; 2 bad configuration or usage;
128 + signal number when SIGINT/SIGTERM stopped training (a checkpoint was saved first).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

from h3_jax.hugepages import restart_with_huge_pages
from h3_jax.train.config import SECTIONS, ConfigError
from h3_jax.train.fields import field_docs, field_types, type_name

PROG = "h3-jax"


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exits with status 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message}")


def _field_lines(obj, prefix: str, indent: str) -> list[str]:
    """One entry per settable field of dataclass `obj`, nested configs expanded."""
    import dataclasses

    from h3_jax.mixers import MixerConfig, spec_of

    lines, docs = [], field_docs(type(obj))
    for name, tp in field_types(type(obj)).items():
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            what = f"a mixer spec, default {spec_of(value)!r}" if isinstance(
                value, MixerConfig) else "settings"
            lines.append(f"{indent}--{prefix}{name}  ({what}): {docs.get(name, '')}")
            lines += _field_lines(value, f"{prefix}{name}.", indent + "  ")
            continue
        lines.append(f"{indent}--{prefix}{name}  ({type_name(tp)}, default {value!r})")
        if docs.get(name):
            lines.append(f"{indent}    {docs[name]}")
    return lines


def options_help() -> str:
    """Every overridable field, with type, the default preset's value and its documentation."""
    from h3_jax import mixers, tasks
    from h3_jax.presets import DEFAULT_PRESET, get_preset

    config = get_preset(DEFAULT_PRESET)
    lines = [f"overrides (--section.field=value; defaults shown are those of {DEFAULT_PRESET}):"]
    for section in SECTIONS:
        lines.append(f"  {section}:")
        lines += _field_lines(getattr(config, section), f"{section}.", "    ")
    lines.append("  --model.mixer=SPEC takes that mixer's defaults (SPEC: a built-in name or "
                 "package.module:ClassName); the other built-in mixers take:")
    for name in mixers.BUILT_IN:
        if name != mixers.spec_of(config.model.mixer):
            lines.append(f"    {name}:")
            lines += _field_lines(mixers.default_config(name), "model.mixer.", "      ")
    lines.append("  --task=SPEC swaps in that task at its defaults (SPEC: a built-in name or "
                 "package.module:ClassName); model.vocab_size follows the task. The task fields "
                 f"above are those of {config.task_name}; the other built-in tasks take:")
    for name in tasks.TASKS:
        if name != config.task_name:
            task = type(tasks.get_task(name))
            docs = field_docs(task)
            lines.append(f"    {name}:")
            for field, tp in field_types(task).items():
                lines.append(f"      --task.{field}  ({type_name(tp)}) {docs.get(field, '')}")
    return "\n".join(lines)


def build_parser(with_options_help: bool = False) -> Parser:
    parser = Parser(prog=PROG, description="Train and evaluate H3 models on synthetic tasks.",
                    epilog=__doc__.split("\n\n", 2)[2],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    train = commands.add_parser(
        "train", help="train a preset (default h3-ar)",
        epilog=options_help() if with_options_help else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train PRESET in DIR; print the test accuracy at the end.",
    )
    train.add_argument("preset", nargs="?", help="preset name (h3-jax presets lists them)")
    train.add_argument("--workdir", help="run directory (default: a new one under ./runs/)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --workdir from its latest checkpoint")
    train.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                       help="progress bar (auto: only when stderr is a terminal)")
    add_process_arguments(train)
    evaluate = commands.add_parser("eval", help="test accuracy of a run's checkpoint")
    evaluate.add_argument("--workdir", required=True, help="run directory")
    evaluate.add_argument("--checkpoint", default="latest",
                          help="latest (default), best (highest eval accuracy) or a step number")
    add_process_arguments(evaluate)
    commands.add_parser("presets", help="list the presets, one line each")
    from h3_jax.convert.cli import add_convert_subcommand
    from h3_jax.launch import add_launch_subcommand

    add_convert_subcommand(commands)
    add_launch_subcommand(commands)
    return parser


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make this process one of a multi-process run (see h3_jax/launch.py)."""
    group = parser.add_argument_group(
        "multi-process runs", "one process per host (or h3-jax launch on one machine); "
        "every process gets the same command and --workdir")
    group.add_argument("--distributed", action="store_true",
                       help="join a multi-process run; under SLURM, Open MPI or on a Cloud TPU "
                            "pod slice the options below are read from the cluster")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0 (implies --distributed)")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0 .. N-1")


def split_overrides(extra: Sequence[str]) -> list[str]:
    """['--model.d_model=64', '--optim.lr', '1e-3'] -> ['model.d_model=64', 'optim.lr=1e-3']."""
    out, items = [], list(extra)
    while items:
        item = items.pop(0)
        key = item.split("=")[0]
        if not item.startswith("--") or ("." not in key and key != "--task"):
            raise UsageError(f"{PROG} train: error: unrecognized argument {item!r}")
        item = item[2:]
        if "=" not in item:
            if not items:
                raise UsageError(f"{PROG} train: error: {item} needs a value")
            item = f"{item}={items.pop(0)}"
        out.append(item)
    return out


def cmd_presets() -> int:
    from h3_jax.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from h3_jax.presets import DEFAULT_PRESET, get_preset
    from h3_jax.train import processes
    from h3_jax.train import workdir as wd
    from h3_jax.train.config import apply_overrides
    from h3_jax.train.lock import prepare_workdir
    from h3_jax.train.loop import train

    if args.resume:
        if not args.workdir or not wd.has_run(args.workdir):
            raise ConfigError(f"--resume needs --workdir of an existing run (no "
                              f"{wd.CONFIG} in {args.workdir})")
        config = wd.read_config(args.workdir)
        if args.preset and args.preset != config.preset:
            raise ConfigError(f"{args.workdir} holds a {config.preset} run, not {args.preset}")
        if overrides and apply_overrides(config, overrides) != config:
            raise ConfigError(f"--resume continues the run as configured in "
                              f"{wd.path(args.workdir, wd.CONFIG)}; drop the overrides")
        workdir = args.workdir
    else:
        if not args.workdir and processes.count() > 1:
            raise ConfigError("a multi-process run needs --workdir (the same on every process)")
        preset = args.preset or DEFAULT_PRESET
        config = apply_overrides(get_preset(preset), overrides)
        workdir = args.workdir or os.path.join(
            "runs", f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        if wd.has_run(workdir):
            raise ConfigError(f"{workdir} already holds a run; pass --resume or a new --workdir")
        prepare_workdir(workdir)
    show = {"auto": None, "on": True, "off": False}[args.progress]
    say = print if processes.is_main() else _quiet
    say(f"{config.preset}: {config.train.steps} steps in {workdir}", flush=True)
    result = train(config, workdir, resume=args.resume, show_progress=show, echo=say)
    s = result.summary
    if result.status in ("diverged", "failed"):
        print(f"{PROG}: error: {result.error}", file=sys.stderr)
        return 1
    if result.status == "interrupted":
        say(f"stopped at step {s['final_step']}; checkpoint saved; continue with "
            f"{PROG} train --workdir {workdir} --resume")
        return 128 + (result.signal or 0)
    say(f"test accuracy {_values(s['test_accuracy'])} at step {s['final_step']} "
        f"(train loss {_values(s['train_loss'])}; {workdir}/summary.json)")
    return 0


def _quiet(*args, **kwargs) -> None:
    """`print` on processes other than 0 of a multi-process run: the run speaks once."""


def cmd_eval(args: argparse.Namespace) -> int:
    from h3_jax.train import processes
    from h3_jax.train import workdir as wd
    from h3_jax.train.restore import evaluate_checkpoint

    if not wd.has_run(args.workdir):
        raise ConfigError(f"no run in {args.workdir} ({wd.CONFIG} not found)")
    step, which, result = evaluate_checkpoint(args.workdir, args.checkpoint)
    say = print if processes.is_main() else _quiet
    say(f"test accuracy {_values(result['accuracy'])} (loss {_values(result['loss'])}) "
        f"at step {step} ({which} checkpoint)")
    return 0


def _values(per_replica: list[float | None] | None) -> str:
    """One value per replica, 4 decimals ("n/a" for a replica without one)."""
    return " ".join("n/a" if v is None else f"{v:.4f}" for v in per_replica or [None])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_help = argv[:1] == ["train"] and any(a in ("-h", "--help") for a in argv)
    parser = build_parser(with_options_help=wants_help)
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "distributed", False) or getattr(args, "coordinator", None):
            from h3_jax.train import processes

            processes.initialize(args.coordinator, args.num_processes, args.process_id)
        if args.command == "presets":
            if extra:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            return cmd_presets()
        if args.command in ("eval", "convert") and extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "eval":
            return cmd_eval(args)
        if args.command in ("convert", "launch"):
            return args.run(args)
        return cmd_train(args, split_overrides(extra))
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The console script: restart once with huge pages for XLA's buffers, then `main`."""
    restart_with_huge_pages()
    sys.exit(main())


if __name__ == "__main__":
    run()
