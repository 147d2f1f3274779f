"""Write the small PIL-generated offline VQA dataset (shapes, colors, counts) as images + data.jsonl."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=24, help="number of items (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=336, help="image side in pixels")


def run(args) -> int:
    from lvlm_atlas.methods.dataset import generate

    path = generate(args.out, n=args.n, seed=args.seed, size=args.size)
    print(f"wrote {args.n} items to {path}")
    return 0
