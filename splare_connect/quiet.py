"""Silence the noise libraries print from *our* calls, and nothing else.

Loading a model prints transformers' "Loading weights" / "Writing model shards" progress
bars, peft reads an attribute that transformers has deprecated (a FutureWarning about
``is_gradient_checkpointing`` on every load), and sentencepiece's C++ logger writes
``I0000 ... builder.cc`` lines while the default model's tokenizer is compiled. None of
it is meant for our users. :func:`quiet_loading` turns each off for the duration of one
of our calls and restores the previous state, so warnings meant for the user, and a
caller's own use of these libraries, are untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Raised inside peft when it merges our LoRA adapter, not by anything the user does.
_PEFT_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Within the block: no transformers progress bars, no peft deprecation warning, and
    sentencepiece logs errors only."""
    from transformers.utils import logging as transformers_logging

    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PEFT_DEPRECATION, category=FutureWarning)
            yield
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()


@contextmanager
def quiet_tracing() -> Iterator[None]:
    """Within the block: transformers logs errors only, and no warnings are shown.

    Tracing a model (TorchScript, OpenVINO's converter) reads config attributes that make
    transformers log notices, and warns about Python branches on tensor shapes; neither
    is the user's concern.
    """
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers_logging.set_verbosity(verbosity)


@contextmanager
def quiet_sentencepiece() -> Iterator[None]:
    """sentencepiece's C++ INFO lines off within the block (errors still show)."""
    import sentencepiece

    sentencepiece.set_min_log_level(2)
    try:
        yield
    finally:
        sentencepiece.set_min_log_level(0)
