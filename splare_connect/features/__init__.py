"""What SAE features mean: a labelled feature dictionary per model, and explanations.

:class:`FeatureDictionary` labels each latent of one encoder (built by
:func:`build_dictionary`, stored beside the model); :func:`dictionary_for` finds the one
that belongs to an encoder; :class:`FeatureWeight` and :class:`MissExplanation` are what
explanations return.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from splare_connect.errors import ConfigError
from splare_connect.features.dictionary import (
    DICTIONARY_FILE,
    FeatureDictionary,
    FeatureEntry,
    WordEvidence,
)
from splare_connect.features.explanation import FeatureWeight, MissExplanation, explain_miss, labelled

__all__ = [
    "DICTIONARY_FILE",
    "FEATURES_DIR",
    "FeatureDictionary",
    "FeatureEntry",
    "FeatureWeight",
    "MissExplanation",
    "WordEvidence",
    "dictionary_for",
    "explain_miss",
    "labelled",
]

LOGGER = logging.getLogger(__name__)

# Where a model directory keeps its dictionary: <model dir>/features/feature_dictionary.json.gz
FEATURES_DIR = "features"


def dictionary_for(directory: Path | None, name: str, fingerprint: dict[str, Any]) -> FeatureDictionary | None:
    """The dictionary of an encoder's vector space, or ``None`` when it has none.

    Looked for in the model's directory (``features/``), then among the dictionaries
    shipped with the package's models (by the model's ``name``). One built for another
    fingerprint (another model, or the same one with other settings) is reported and
    passed over: its labels would name other features.

    Args:
        directory: The model directory the encoder was loaded from, if any.
        name: The model's name.
        fingerprint: The encoder's fingerprint.
    """
    from splare_connect.models.packaged_adapter import LORA_DIR

    places = [] if directory is None else [directory / FEATURES_DIR]
    places.append(LORA_DIR / name / FEATURES_DIR)
    for place in places:
        if (place / DICTIONARY_FILE).is_file():
            dictionary = FeatureDictionary.load(place)
            try:
                dictionary.check_encoder(fingerprint)
            except ConfigError as mismatch:
                LOGGER.warning("%s: not used (%s)", place / DICTIONARY_FILE, mismatch)
                continue
            return dictionary
    return None
