"""Fine-tuning (SPLARE: LoRA on the backbone, SAE frozen) and SAE training (SAE-SPLADE stage one)."""
