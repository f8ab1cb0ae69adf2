"""Train-step throughput of the official PyTorch H3 layer on CPU, in the LM that h3_jax times.

    python official_h3_torch.py [--official PATH] [--threads 2] [--profile]

Measures tokens/s of one AdamW (lr 5e-4, weight decay 0.1) train step -- forward, mean
cross-entropy over all positions, backward, optimizer step -- of a 2-layer LM around the official
`H3` class (HazyResearch/H3, src/models/ssm/h3.py) on random tokens, batch 32, length 1024:
1 warm-up step, then the median of 5 rounds of 5 steps. The last line of stdout is tokens/s
alone, as the child processes of bench_user_script.py print it.

The LM is h3_jax's `LMConfig(vocab_size=30, d_model=64, n_layer=2, d_inner=256)` in plain torch:
token embedding (tied output head), per layer x += H3(LN(x)), x += MLP(LN(x)) with MLP =
Linear(64, 256), GELU (tanh), Linear(256, 64), then a final LayerNorm. Linear weights and the
embedding are N(0, 0.02), fc2 N(0, 0.02 / sqrt(2 n_layer)), biases 0, as h3_jax initialises
them; the SSM parameters keep the official init. H3 runs at its official defaults: d_state 64,
head_dim 1, l_max None (global kernel), use_fast_fftconv False (the pure-torch FFT path), the
shift SSM on k and the diagonal S4D SSM (mode "diag", measure "diag-lin", bilinear) on k . v.
Dropout is 0 unless --dropout, which drops the embedding as h3_jax's `embed_dropout` does
(bench_user_script.py trains with its default 0.1).

The official code is not part of this project. Place the official repository's
src/models/ssm/ (h3.py, ss_kernel*.py, dplr.py, hippo.py, ssm_utils.py) with the src/ops/
(krylov, toeplitz, vandermonde) and src/utils/utils.py it imports under PATH, keeping the
src/... layout (empty __init__.py files are fine), and run this file with a Python that has
torch, einops, opt_einsum, scipy and pytorch_lightning (src/utils/utils.py imports it). Without
the CUDA extensions (fftconv, cauchy_mult, pykeops) the official code falls back to pure torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, N_LAYER, INIT_STD = 30, 2, 0.02


class Block(nn.Module):
    """x + H3(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, H3, d_model: int, d_inner: int, layer: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.mixer = H3(d_model=d_model, layer_idx=layer)  # the official defaults
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)
        self.fc1 = nn.Linear(d_model, d_inner)
        self.fc2 = nn.Linear(d_inner, d_model)

    def forward(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class LM(nn.Module):
    def __init__(self, H3, d_model: int, d_inner: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(Block(H3, d_model, d_inner, i) for i in range(N_LAYER))
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        with torch.no_grad():  # h3_jax's init of the dense layers and the embedding
            nn.init.normal_(self.embedding.weight, std=INIT_STD)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=INIT_STD)
                    nn.init.zeros_(module.bias)
            for block in self.layers:
                nn.init.normal_(block.fc2.weight, std=INIT_STD / (2 * N_LAYER) ** 0.5)

    def forward(self, tokens):
        x = self.drop(self.embedding(tokens))
        for block in self.layers:
            x = block(x)
        return F.linear(self.ln_f(x), self.embedding.weight)  # tied head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", default=os.environ.get("H3_OFFICIAL"),
                        help="folder holding the official src/ package (default: $H3_OFFICIAL)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--d-inner", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--dropout", type=float, default=0.0, help="embedding dropout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, profile --profile-steps steps; table to stderr")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--profile-out", help="also write the profile table to this file")
    args = parser.parse_args()
    if not args.official or not os.path.isdir(os.path.join(args.official, "src")):
        parser.error(f"--official: expected a folder holding the official src/, got {args.official!r}")

    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.official)
    from src.models.ssm.h3 import H3  # the official layer

    torch.manual_seed(0)
    model = LM(H3, args.d_model, args.d_inner, args.dropout).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (args.batch, args.length + 1), generator=gen)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n_params:,} params, "
          f"B={args.batch} L={args.length} D={args.d_model}", file=sys.stderr)
    loss = step()  # warm-up
    print(f"warm-up loss {loss:.4f}", file=sys.stderr)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        times.append((time.perf_counter() - start) / args.steps)
    if times:
        print(f"step times (s): {', '.join(f'{t:.4f}' for t in times)}; loss {loss:.4f}",
              file=sys.stderr)

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.profile_steps):
                step()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        print(table, file=sys.stderr)
        if args.profile_out:
            with open(args.profile_out, "w") as f:
                f.write(table + "\n")
    if times:
        print(args.batch * args.length / statistics.median(times))


if __name__ == "__main__":
    main()
