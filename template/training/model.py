"""The shared model: a transformers Llama-style causal LM built from the run's config.

Nothing is downloaded: the architecture comes from ``ModelConfig`` and the initial
weights from a seeded PRNG, so every node builds the identical starting model.
"""

from __future__ import annotations

import contextlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from template.hparams import ModelConfig


def llama_config(cfg: ModelConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.seq_len,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        use_cache=False,
    )


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> LlamaForCausalLM:
    """Build the model with deterministic initial weights (fp32 master weights)."""
    fork_devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(cfg.init_seed)
        model = LlamaForCausalLM(llama_config(cfg))
    return model.to(device=device, dtype=torch.float32)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def autocast(device: str | torch.device):
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def flat_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters by name (tied weights appear once), as the protocol addresses them."""
    return dict(model.named_parameters())


def param_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def shapes_of(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the model ``cfg`` describes, without allocating it (meta device)."""
    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(cfg))
    return param_shapes(model)
