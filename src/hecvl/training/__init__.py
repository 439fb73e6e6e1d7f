"""Pretraining: one variant of the study for a fixed number of optimizer steps, on CPU, a GPU or DDP.

- `trainer`: `pretrain(params, pairs_dir, out_dir)` and the `Trainer` (deterministic, resumable);
- `schedules`: which level(s) each step trains (fine_to_coarse, joint, clip_only, epoch_alternation);
- `data`: the training datasets and loaders of each level; `step`: the contrastive step;
- `optim`: AdamW with warm-up and cosine decay; `checkpoint`: atomic, checksummed checkpoints;
- `distributed`: DDP under torchrun; `pretrain_cli`: `hecvl pretrain`.
The `train:` settings are `hecvl.config.TrainSettings`.
"""
