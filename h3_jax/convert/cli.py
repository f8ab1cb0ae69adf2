"""`h3-jax convert IN OUTDIR`: an official H3 checkpoint to an orbax checkpoint + config.json.

    h3-jax convert H3-125M/model.pt h3-125m                 # a released model: no options
    h3-jax convert model.safetensors out --attn-heads 8    # a hybrid of other sizes
    python -m h3_jax.convert.cli IN OUTDIR [options]        # the same without the main command

Load the result with `h3_jax.convert.load(OUTDIR)`. Exit status: 0 done; 2 bad usage or a file
that is not an official H3 state dict (the message names the offending keys).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

PROG = "h3-jax convert"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("input", metavar="IN",
                        help="official state dict: .safetensors, .npz, or .pt/.bin (needs torch)")
    parser.add_argument("outdir", metavar="OUTDIR", help="new directory for the checkpoint")
    parser.add_argument("--attn-heads", type=int, metavar="N",
                        help="heads of the attention layers (default: from the preset)")
    parser.add_argument("--preset", metavar="NAME",
                        help="released model (H3-125M, H3-355M, H3-1.3B, H3-2.7B, "
                             "H3-2.7B-rotary); default: found from the sizes")
    parser.add_argument("--rotary-dim", type=int, metavar="R",
                        help="rotary dimension of the attention layers (default: from the preset)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow arbitrary pickles in .pt/.bin files (only for trusted files)")
    return parser


def add_convert_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register `convert` on the main command's subparsers. Dispatch with `args.run(args)`,
    which returns the exit status (errors are printed, not raised)."""
    parser = subparsers.add_parser(
        "convert", help="convert an official H3 (PyTorch) checkpoint",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(parser)
    parser.set_defaults(run=convert_command)
    return parser


def run_convert(args: argparse.Namespace) -> int:
    """Convert args.input into args.outdir; print a summary. Errors propagate as exceptions."""
    from h3_jax.convert.checkpoint import save
    from h3_jax.convert.files import read_state_dict
    from h3_jax.convert.official import from_official

    state_dict = read_state_dict(args.input, trust_pickle=args.trust_pickle)
    config, params = from_official(
        state_dict, preset=args.preset, n_heads=args.attn_heads, rotary_emb_dim=args.rotary_dim
    )
    save(args.outdir, config, params)
    count = sum(a.size for a in _leaves(params))
    print(f"{args.input}: {count:,} parameters, d_model {config.d_model}, {config.n_layer} "
          f"layers, attention at {list(config.attn_layer_idx)} -> {args.outdir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`h3-jax convert` on its own: argv holds IN OUTDIR [options] (without the word convert)."""
    parser = add_arguments(argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0]))
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:  # argparse has printed the usage error
        return int(exit_.code or 0)
    return convert_command(args)


def convert_command(args: argparse.Namespace) -> int:
    """run_convert, with a bad input file reported on stderr as exit status 2."""
    try:
        return run_convert(args)
    except (ValueError, OSError, ImportError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value


if __name__ == "__main__":
    sys.exit(main())
