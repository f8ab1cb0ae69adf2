"""`h3-jax launch -n N COMMAND ...`: one h3-jax command as N processes on this machine.

    h3-jax launch -n 2 train tiny-ar --workdir runs/two     # 2 processes, 1 CPU device each
    h3-jax launch -n 2 train --workdir runs/two --resume    # after a crash, kill -9 included

The processes form one multi-process JAX run exactly as the hosts of a cluster do (process 0
runs the coordinator on 127.0.0.1 at a free port; CPU collectives go through gloo), so a run
launched here behaves as it will under SLURM or on a TPU pod slice: process 0 writes the
metrics and the summary, every process writes its part of each checkpoint. Each process sees
`--devices-per-process` CPU devices. Signals reach every process; when one process fails, the
others are stopped. Exit status: the first non-zero status of a process, else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

GRACE_S = 20.0  # for the other processes to stop after one failed, before they are killed


def add_launch_subcommand(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "launch", help="run a train / eval command as N processes on this machine",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("-n", "--processes", type=int, default=2, metavar="N",
                        help="number of processes (default 2)")
    parser.add_argument("--devices-per-process", type=int, default=1, metavar="D",
                        help="CPU devices each process sees (default 1)")
    parser.add_argument("--port", type=int, default=0,
                        help="coordinator port on 127.0.0.1 (default: a free one)")
    parser.add_argument("launched", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="train ... or eval ..., as after h3-jax")
    parser.set_defaults(run=launch_command)
    return parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(devices: int) -> dict[str, str]:
    """This environment, with XLA told to show `devices` CPU devices."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    env.pop("JAX_NUM_CPU_DEVICES", None)
    return env


def process_commands(command: Sequence[str], n: int, port: int) -> list[list[str]]:
    """The command line of each process: the h3-jax command plus its place in the run."""
    base = [sys.executable, "-m", "h3_jax.cli", *command,
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
    return [base + ["--process-id", str(i)] for i in range(n)]


def launch(command: Sequence[str], n: int, devices: int = 1, port: int = 0) -> int:
    """Run `h3-jax COMMAND` as `n` processes; the first non-zero exit status, else 0."""
    commands = process_commands(command, n, port or free_port())
    env = process_env(devices)
    # Sessions of their own: a Ctrl-C in the terminal reaches them once, through `forward`
    # (a second signal would stop a run without its checkpoint).
    procs = [subprocess.Popen(c, env=env, start_new_session=True) for c in commands]

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status, failed_at = 0, None
        while any(p.poll() is None for p in procs):
            codes = [p.returncode for p in procs if p.returncode is not None]
            if failed_at is None and any(codes):
                status, failed_at = next(c for c in codes if c), time.monotonic()
                forward(signal.SIGTERM, None)  # the others would wait for it in a collective
            if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.1)
        return _exit_status(status or next((p.returncode for p in procs if p.returncode), 0))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _exit_status(returncode: int) -> int:
    """A process killed by signal S (returncode -S) as the shell reports it: 128 + S."""
    return 128 - returncode if returncode < 0 else returncode


def launch_command(args: argparse.Namespace) -> int:
    from h3_jax.train.config import ConfigError

    command = args.launched[1:] if args.launched[:1] == ["--"] else args.launched
    if not command or command[0] not in ("train", "eval"):
        raise ConfigError("launch: give the command to run: train ... or eval ...")
    if args.processes < 1:
        raise ConfigError(f"launch: -n must be at least 1, not {args.processes}")
    if args.devices_per_process < 1:
        raise ConfigError("launch: --devices-per-process must be at least 1, "
                          f"not {args.devices_per_process}")
    return launch(command, args.processes, args.devices_per_process, args.port)
