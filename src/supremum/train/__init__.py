"""Training: the loop, optimizers, checkpoints, methods/ (one file per method), finetune stage."""
