"""The global-batch sampler: full batches on every rank, the same global order at any split, resume, shards."""
from __future__ import annotations

import pytest

from cvatflow.errors import TrainingError
from cvatflow.training.sampler import EpochBatchSampler, GlobalBatchSampler, ShardSampler, fit_accumulation


def steps(size: int, batch: int, world: int, accum: int, epoch: int = 1, start: int = 0) -> list[list[int]]:
    """Each optimizer step's global batch: every rank's micro-batches, in micro-batch order (a × world + rank)."""
    ranks = []
    for rank in range(world):
        s = GlobalBatchSampler(size, batch, seed=3, world=world, rank=rank, accum=accum)
        s.set_epoch(epoch, start)
        micro = list(s)
        assert len(micro) == len(s)
        assert all(len(m) == batch for m in micro), "a rank got a short or empty batch"
        ranks.append(micro)
    out = []
    for step in range(len(ranks[0]) // accum):
        batch_ = []
        for a in range(accum):
            for rank in range(world):
                batch_ += ranks[rank][step * accum + a]
        out.append(batch_)
    return out


def test_every_rank_gets_full_batches_and_the_epoch_is_covered():
    got = steps(size=10, batch=2, world=2, accum=1)  # global batch 4: 3 steps, the last padded by wrap-around
    assert len(got) == 3 and all(len(b) == 4 for b in got)
    seen = [i for b in got for i in b]
    assert set(seen) == set(range(10, 20))  # epoch 1 carries + 1 × size
    # fewer images than one global batch still gives every rank a full batch
    tiny = steps(size=3, batch=2, world=2, accum=2)
    assert len(tiny) == 1 and len(tiny[0]) == 8 and set(tiny[0]) == {3, 4, 5}


def test_the_global_order_does_not_depend_on_the_split():
    two = steps(size=11, batch=2, world=2, accum=1)
    assert steps(size=11, batch=2, world=1, accum=2) == two
    assert steps(size=11, batch=1, world=2, accum=2) == two
    # a resumed epoch starts at its step, in any split
    assert steps(size=11, batch=2, world=1, accum=2, start=1) == two[1:]


def test_one_process_without_accumulation_is_the_plain_sampler():
    import random

    plain = EpochBatchSampler(10, 4, seed=3)
    plain.set_epoch(1)
    order = list(range(10))
    random.Random(3 * 100003 + 1).shuffle(order)  # the harness's order before many processes: unchanged
    expected = [[i + 10 for i in order[k:k + 4]] for k in (0, 4, 8)]
    assert list(plain) == expected  # with the short last batch of the one-process harness


def test_validation_shards_cover_each_image_once():
    shards = [[i for b in ShardSampler(7, 2, world=3, rank=r) for i in b] for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))


def test_resume_keeps_the_global_batch_or_names_the_sizes_that_work():
    assert fit_accumulation(8, 2, 1) == 4 and fit_accumulation(8, 2, 4) == 1
    with pytest.raises(TrainingError, match="Resume with 1, 2, 4 processes at batch_size 2"):
        fit_accumulation(8, 2, 3)
