"""Seeded global batches split across ranks and accumulation steps, resumable mid-epoch at another world size."""
from __future__ import annotations

import random
from collections.abc import Iterator

from cvatflow.errors import TrainingError


class GlobalBatchSampler:
    """The batch sampler of one rank: each optimizer step takes a global batch of `batch_size × world × accum`
    consecutive indices of the epoch's seeded shuffle (indices carry `epoch × size` so the dataset can seed
    augmentation by epoch); micro-batch `a × world + rank` of it (`batch_size` indices) is this rank's `a`-th.

    With more than one micro-batch per step (world or accum above 1), a short last global batch is filled by
    wrapping around the epoch's order, so no rank ever gets an empty or short batch (a rank without work would
    leave DDP waiting). One process without accumulation keeps the short last batch: that is the plain harness.
    The order depends on the seed, epoch and global batch only, never on how it is split: a run resumed at
    another world size with the same global batch sees the same images at the same step.
    """

    def __init__(self, size: int, batch_size: int, seed: int, shuffle: bool = True, world: int = 1,
                 rank: int = 0, accum: int = 1):
        if size < 1:
            raise TrainingError("the sampler needs at least one image")
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle
        self.world, self.rank, self.accum = world, rank, accum
        self.epoch, self.start = 0, 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world * self.accum

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the data (the last one padded or short)."""
        return (self.size + self.global_batch - 1) // self.global_batch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Start `epoch` at its global batch (optimizer step) `start_batch` (a resumed run)."""
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        """Micro-batches this rank yields from the current start."""
        return (self.steps_per_epoch - self.start) * self.accum

    def order(self) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            random.Random(self.seed * 100003 + self.epoch).shuffle(order)
            order = [i + self.epoch * self.size for i in order]  # the dataset reads the epoch back (augmentation)
        return order

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        pad = self.world * self.accum > 1
        g = self.global_batch
        for step in range(self.start, self.steps_per_epoch):
            first = step * g
            chunk = ([order[(first + j) % self.size] for j in range(g)] if pad
                     else order[first:first + g])
            for a in range(self.accum):
                m = a * self.world + self.rank
                yield chunk[m * self.batch_size:(m + 1) * self.batch_size]


class EpochBatchSampler(GlobalBatchSampler):
    """One process, no accumulation: seeded shuffled batches per epoch that can start mid-epoch."""

    def __init__(self, size: int, batch_size: int, seed: int, shuffle: bool = True):
        super().__init__(size, batch_size, seed, shuffle)


class ShardSampler:
    """Validation batches of one rank: every `world`-th image from `rank`, in order, never padded (each image is
    evaluated once; rank 0 puts the gathered results back into the images' order)."""

    def __init__(self, size: int, batch_size: int, world: int = 1, rank: int = 0):
        self.ids = list(range(rank, size, world))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return (len(self.ids) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.ids), self.batch_size):
            yield self.ids[i:i + self.batch_size]


def fit_accumulation(global_batch: int, batch_size: int, world: int) -> int:
    """The accumulation steps that keep a resumed run's `global_batch` at `world` processes of `batch_size`;
    TrainingError naming the world sizes that work when none does."""
    per_step = batch_size * world
    if global_batch % per_step == 0:
        return global_batch // per_step
    fits = [w for w in range(1, global_batch // batch_size + 1) if global_batch % (batch_size * w) == 0]
    raise TrainingError(f"checkpoints/last.pt was trained with a global batch of {global_batch} images; "
                        f"{world} processes × batch_size {batch_size} do not divide it. Resume with "
                        f"{', '.join(map(str, fits)) or 'no'} processes at batch_size {batch_size}, or change "
                        f"batch_size so that batch_size × processes divides {global_batch}, or start a new --output")
