"""The PyTorch side of dtlc's GPT checks: an independent reference.

Written from the formats' specifications, not from dtlc's code:
  - read_safetensors: the safetensors layout (8-byte little-endian header
    length, JSON header with dtype/shape/data_offsets, raw little-endian data);
  - read_tokens: llm.c token shards (256 x int32 header: magic 20240520,
    version 1, token count; then uint16 tokens);
  - GPT: a GPT-2 (nanoGPT-style) model in plain PyTorch, with
    load_dtl_checkpoint mapping examples/gpt.dtl's parameter names onto it;
  - Sampler and lr_at: the training-order and learning-rate rules the
    README documents for compiled programs.
Runs under Debian's /usr/bin/python3 (python3-torch, python3-numpy).
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "F16": np.float16}


def read_safetensors(path):
    """Returns ({name: np.ndarray}, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (length,) = struct.unpack("<Q", blob[:8])
    if 8 + length > len(blob):
        raise ValueError(f"{path}: header length {length} runs past the end of the file")
    header = json.loads(blob[8 : 8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + length :]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end - begin != count * dtype.itemsize or end > len(data):
            raise ValueError(f"{path}: tensor {name} has inconsistent data_offsets")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors, metadata


def read_tokens(path):
    """The uint16 tokens of an llm.c shard, as an int64 numpy array."""
    header = np.fromfile(path, dtype="<i4", count=256)
    if len(header) < 256 or header[0] != 20240520 or header[1] != 1:
        raise ValueError(f"{path}: not an llm.c token shard (magic/version)")
    tokens = np.fromfile(path, dtype="<u2", offset=1024)
    if len(tokens) != header[2]:
        raise ValueError(f"{path}: header says {header[2]} tokens, file has {len(tokens)}")
    return tokens.astype(np.int64)


MASK = (1 << 64) - 1


def write_tokens(path, count, vocab, seed):
    """An llm.c token shard of `count` random tokens below `vocab`."""
    rng = np.random.default_rng(seed)
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, count)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(rng.integers(0, vocab, count, dtype=np.uint16).astype("<u2").tobytes())


def hash_index(seed, stream, index):
    """splitmix64 over (seed, FNV-style stream hash, index)."""
    h = (seed ^ 0x9E3779B97F4A7C15) & MASK
    for c in stream.encode():
        h = ((h ^ c) * 0x100000001B3) & MASK
    z = (h + 0x9E3779B97F4A7C15 * (index + 1)) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Sampler:
    """Sample order: one seeded Fisher-Yates permutation per epoch."""

    def __init__(self, count, seed):
        self.count, self.seed, self.epoch, self.order = count, seed, -1, None

    def at(self, pos):
        epoch = pos // self.count
        if epoch != self.epoch:
            order = list(range(self.count))
            for i in range(self.count - 1, 0, -1):
                j = hash_index(self.seed, f"epoch{epoch}", i) % (i + 1)
                order[i], order[j] = order[j], order[i]
            self.order, self.epoch = order, epoch
        return self.order[pos % self.count]


def batch_at(tokens, sampler, step, batch, seq):
    """(ids, targets) of 1-based `step`: windows of seq + 1 tokens."""
    rows = [sampler.at((step - 1) * batch + b) for b in range(batch)]
    windows = np.stack([tokens[k * seq : k * seq + seq + 1] for k in rows])
    return torch.from_numpy(windows[:, :-1]), torch.from_numpy(windows[:, 1:])


def lr_at(schedule, lr, step, steps, warmup=0, min_lr=0.0):
    if schedule in ("warmup", "warmup_cosine") and step <= warmup:
        return lr * step / max(warmup, 1)
    if schedule in ("cosine", "warmup_cosine"):
        start = warmup if schedule == "warmup_cosine" else 0
        progress = min((step - start) / max(steps - start, 1), 1.0)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))
    return lr


class Attention(nn.Module):
    def __init__(self, C, H, fused=False):
        super().__init__()
        self.H, self.fused = H, fused
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        if self.fused:  # PyTorch's flash attention (the GPU benchmark)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.H)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, H, fused=False):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(C), Attention(C, H, fused)
        self.ln_2, self.mlp = nn.LayerNorm(C), MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, L, C, H, T, V, fused=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, H, fused) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe.weight[: idx.shape[1]]
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied lm head
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def load_dtl_checkpoint(model, tensors):
    """Copies examples/gpt.dtl's params (stacked [L, ...] per block param,
    weights [in, out]) into the GPT above (nn.Linear weights are [out, in])."""
    t = {name: torch.from_numpy(value).float() for name, value in tensors.items()}
    with torch.no_grad():
        model.wte.weight.copy_(t["wte"])
        model.wpe.weight.copy_(t["wpe"])
        model.ln_f.weight.copy_(t["lnf_w"])
        model.ln_f.bias.copy_(t["lnf_b"])
        for l, block in enumerate(model.h):
            block.ln_1.weight.copy_(t["h.ln1_w"][l])
            block.ln_1.bias.copy_(t["h.ln1_b"][l])
            block.attn.c_attn.weight.copy_(t["h.w_qkv"][l].t())
            block.attn.c_attn.bias.copy_(t["h.b_qkv"][l])
            block.attn.c_proj.weight.copy_(t["h.w_o"][l].t())
            block.attn.c_proj.bias.copy_(t["h.b_o"][l])
            block.ln_2.weight.copy_(t["h.ln2_w"][l])
            block.ln_2.bias.copy_(t["h.ln2_b"][l])
            block.mlp.c_fc.weight.copy_(t["h.w_fc"][l].t())
            block.mlp.c_fc.bias.copy_(t["h.b_fc"][l])
            block.mlp.c_proj.weight.copy_(t["h.w_proj"][l].t())
            block.mlp.c_proj.bias.copy_(t["h.b_proj"][l])


def param_count(L, C, T, V):
    """Parameters of the GPT above (the embedding counted with its padding)."""
    per_layer = 12 * C * C + 13 * C
    return V * C + T * C + L * per_layer + 2 * C


def time_train_steps(L, C, H, T, B, V, steps, threads, seed=0, bf16=False):
    """Milliseconds of each full train step (forward, backward, AdamW) of
    this GPT in PyTorch eager, with `threads` intra-op threads; with `bf16`,
    the forward under CPU bf16 autocast (f32 master weights)."""
    import time

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    model = GPT(L, C, H, T, V)
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(steps):
        idx = torch.randint(0, min(V, 65), (B, T), generator=generator)
        targets = torch.randint(0, min(V, 65), (B, T), generator=generator)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def gemm_gflops(m, n, k, threads, repeats=200):
    """SGEMM throughput of torch.mm ([m, k] @ [k, n]) with `threads` threads:
    the ceiling both sides' GEMMs work under on this machine."""
    import time

    torch.set_num_threads(threads)
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(10):
        torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2.0 * m * n * k * repeats / (time.perf_counter() - start) / 1e9


def time_train_steps_cuda(L, C, H, T, B, V, steps, compile=True, bf16=True, seed=0):
    """Milliseconds of each full train step of this GPT on the GPU, as fast
    as PyTorch goes: flash attention, bf16 autocast (f32 master weights),
    fused AdamW, TF32 for what stays f32, torch.compile."""
    import time

    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = GPT(L, C, H, T, V, fused=True).cuda()
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.02)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    step_model = torch.compile(model) if compile else model
    generator = torch.Generator(device="cuda").manual_seed(seed)
    times = []
    for _ in range(steps):
        idx = torch.randint(0, V, (B, T), generator=generator, device="cuda")
        targets = torch.randint(0, V, (B, T), generator=generator, device="cuda")
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = step_model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return times
