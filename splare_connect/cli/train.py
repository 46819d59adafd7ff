"""``train`` and ``train-sae``: fine-tune an encoder, or train an SAE on a backbone's states."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from splare_connect.cli.common import (
    fail,
    stderr,
    stdout,
)
from splare_connect.errors import SplareError


def train_command(
    config: Annotated[Path, typer.Argument(help="JSON training config (see splare_connect.training.config).")],
) -> None:
    """Fine-tune an encoder the SPLARE way: LoRA on the backbone, SAE frozen, dense teacher."""
    from splare_connect.training.config import TrainConfig
    from splare_connect.training.finetune import train

    def report(step: int, stats: dict[str, float]) -> None:
        if step % 10 == 0 or step == settings.steps - 1:
            stderr.print(
                f"step {step + 1}/{settings.steps}: loss {stats['loss']:.4f} (kl {stats['kl']:.4f}, "
                f"flops {stats['flops']:.4f}, dense {stats['dense']:.4f}, parallel {stats['parallel']:.4f}, "
                f"labels {stats['labels']:.4f}, dense labels {stats['dense_labels']:.4f}, "
                f"dense from sparse {stats['dense_from_sparse']:.4f}, "
                f"sparse from dense {stats['sparse_from_dense']:.4f}), "
                f"batch accuracy {stats['accuracy']:.2f}, sparse leads {stats['sparse_leads']:.2f}, "
                f"query nnz {stats['query_nnz']:.0f}, {stats['seconds']:.0f} s",
                highlight=False,
                soft_wrap=True,
            )

    try:
        settings = TrainConfig.load(config)
        output = train(settings, on_step=report)
    except SplareError as error:
        raise fail(error) from error
    stdout.print(f"fine-tuned model written to {output}", highlight=False)


def train_sae_command(
    backbone: Annotated[str, typer.Argument(help="Backbone directory (or hub id where a hub is reachable).")],
    texts: Annotated[Path, typer.Argument(help="A .jsonl file or directory of texts to collect token states from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    layer: Annotated[
        int, typer.Option(help="Block index L (blocks.L.hook_resid_post); negative counts from the end.")
    ] = -1,
    latents: Annotated[int, typer.Option(help="Number of SAE latents.")] = 16384,
    k: Annotated[int, typer.Option(help="Active latents per token (TopK).")] = 32,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 5000,
    max_tokens: Annotated[int, typer.Option(help="Token states to collect.")] = 200_000,
) -> None:
    """Train a TopK SAE on a backbone's token states (stage one of SAE-SPLADE)."""
    from splare_connect.documents import Document, read_source
    from splare_connect.training.sae_training import train_sae_model

    try:
        documents = [d.text for d in read_source(texts) if isinstance(d, Document)]
        result = train_sae_model(
            backbone, layer, documents, output, latents=latents, k=k, steps=steps, max_tokens=max_tokens
        )
    except SplareError as error:
        raise fail(error) from error
    stdout.print(
        f"SAE trained on {result.tokens} token states in {result.seconds:.0f} s: explained variance "
        f"{result.explained_variance:.3f}, dead latents {result.dead_fraction:.1%}; model directory {result.model_dir}",
        highlight=False,
        soft_wrap=True,
    )
