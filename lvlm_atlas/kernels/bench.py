"""GPU benchmark of the kernels against the eager path and one SDPA forward of the same shape.

    .venv/bin/python -m lvlm_atlas.kernels.bench [--tokens 16384] [--heads 32] [--kv-heads 32] [--head-dim 128]

Prints, for all-query accumulated attention at ``--tokens``: Triton time, eager time (materialised
softmax, chunked so it fits), one causal SDPA forward, and the peak memory of the Triton call;
then the 2-bit/4-bit KIVI footprint vs bf16 and the fused decode kernel vs dequantize + attention.
Needs CUDA; on CPU it says so and exits 0.
"""

from __future__ import annotations

import argparse

import torch


def _time(fn, reps: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("kernels.bench needs a CUDA GPU; nothing measured")
        return 0
    from lvlm_atlas.kernels.attention_scores import accumulated_attention
    from lvlm_atlas.kernels.kv_quant import decode_attention, decode_attention_reference, quantize

    N, H, Hk, D = args.tokens, args.heads, args.kv_heads, args.head_dim
    q = torch.randn(1, H, N, D, device="cuda", dtype=torch.float16)
    k = torch.randn(1, Hk, N, D, device="cuda", dtype=torch.float16)
    v = torch.randn(1, Hk, N, D, device="cuda", dtype=torch.float16)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t_kernel = _time(lambda: accumulated_attention(q, k))
    peak = torch.cuda.max_memory_allocated() - base
    t_eager = _time(lambda: accumulated_attention(q, k, backend="torch"), reps=1)
    kk = k.repeat_interleave(H // Hk, dim=1)
    vv = v.repeat_interleave(H // Hk, dim=1)
    t_sdpa = _time(lambda: torch.nn.functional.scaled_dot_product_attention(q, kk, vv, is_causal=True))
    print(f"accumulated attention, {N} queries x {N} keys, {H}/{Hk} heads, d={D}")
    print(f"  triton {t_kernel:.2f} ms | eager (chunked torch) {t_eager:.2f} ms ({t_eager / t_kernel:.1f}x) | "
          f"SDPA forward {t_sdpa:.2f} ms (kernel = {t_kernel / t_sdpa:.2f}x SDPA)")
    print(f"  extra peak memory of the kernel call: {peak / 2**20:.1f} MiB "
          f"(q+k = {(q.numel() + k.numel()) * 2 / 2**20:.1f} MiB; an N x N fp32 map per head would be "
          f"{N * N * 4 / 2**20:.0f} MiB)")
    record = {"tokens": N, "heads": H, "kv_heads": Hk, "head_dim": D, "score_kernel_ms": t_kernel,
              "score_chunked_torch_ms": t_eager, "sdpa_forward_ms": t_sdpa, "kernel_vs_sdpa": t_kernel / t_sdpa,
              "kernel_extra_peak_mib": peak / 2**20, "quantized_decode": {}}
    q1 = q[:, :, -1:]
    for bits in (2, 4):
        qk, qv = quantize(k, bits, 32, "channel"), quantize(v, bits, 32, "token")
        ratio = (qk.nbytes + qv.nbytes) / ((k.numel() + v.numel()) * 2)
        t_fused = _time(lambda: decode_attention(q1, qk, qv))
        t_ref = _time(lambda: decode_attention_reference(q1, qk, qv))
        print(f"  {bits}-bit KV: {ratio:.3f}x the bf16 bytes; fused decode {t_fused:.3f} ms vs "
              f"dequantize+attend {t_ref:.3f} ms")
        record["quantized_decode"][f"{bits}bit"] = {"bytes_ratio": ratio, "fused_ms": t_fused, "reference_ms": t_ref}
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": torch.cuda.get_device_name(0), **record}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
