import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdfewshot.data.imageset import ImageSet
from pdfewshot.data.sampling import (
    EpisodeBatchSampler,
    ShuffledBatchSampler,
    TripleBatchSampler,
    class_groups,
    split_support_query,
)
from pdfewshot.data.splits import HELD_OUT_SAME_PAIRS, Split, hold_out_images, split_classes
from pdfewshot.errors import PdfewshotError


def imageset_with_counts(counts: list[int]) -> ImageSet:
    labels = np.repeat(np.arange(len(counts)), counts)
    return ImageSet(
        images=np.zeros((len(labels), 2, 2, 1), dtype=np.uint8),
        labels=labels,
        class_names=tuple(f"c{i}" for i in range(len(counts))),
        keys=tuple(f"img{i}" for i in range(len(labels))),
    )


def test_split_holds_out_whole_alphabets_when_nested() -> None:
    names = [f"alpha{a}/char{c}" for a in range(10) for c in range(3)]
    split = split_classes(names, 0.2, seed=0)
    assert split.unit == "alphabet"
    novel_alphabets = {n.split("/")[0] for n in split.novel}
    assert len(novel_alphabets) == 2 and len(split.novel) == 6
    assert not novel_alphabets & {n.split("/")[0] for n in split.base}
    assert split == split_classes(names, 0.2, seed=0)
    assert split != split_classes(names, 0.2, seed=1)


def test_split_by_class_for_flat_data() -> None:
    split = split_classes([f"c{i}" for i in range(10)], 0.3, seed=0)
    assert split.unit == "class" and len(split.novel) == 3 and len(split.base) == 7


def test_split_rejects_overlap_and_bad_fraction() -> None:
    with pytest.raises(ValueError):
        Split(base=("a", "b"), novel=("b",), unit="class")
    with pytest.raises(PdfewshotError, match="novel_fraction"):
        split_classes(["a", "b"], 1.5, seed=0)
    with pytest.raises(PdfewshotError, match=r"novel_fraction -0\.1: must be at least 0 and below 1"):
        split_classes(["a", "b"], -0.1, seed=0)


def test_a_fraction_of_zero_holds_nothing_out() -> None:
    split = split_classes(["x/a", "x/b", "y/c"], 0.0, seed=0)
    assert split.base == ("x/a", "x/b", "y/c") and split.novel == ()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=2, max_size=30, unique=True),
    st.floats(0.05, 0.95),
    st.integers(0, 1000),
)
def test_base_and_novel_never_share_a_class_and_cover_all(names: list[str], fraction: float, seed: int) -> None:
    split = split_classes(names, fraction, seed)
    assert not set(split.base) & set(split.novel)
    assert set(split.base) | set(split.novel) == set(names)
    assert split.base and split.novel


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=12), st.integers(1, 20), st.integers(0, 10_000))
def test_triples_take_anchor_and_positive_from_one_class_negative_from_another(
    counts: list[int], batch_size: int, seed: int
) -> None:
    if max(counts) < 2:
        counts[0] = 2
    labels = imageset_with_counts(counts).labels
    sampler = TripleBatchSampler(labels, batch_size, steps=3, seed=seed)
    batches = list(sampler)
    assert len(batches) == 3 and all(len(b) == batch_size for b in batches)
    for anchor, positive, negative in (triple for batch in batches for triple in batch):
        assert anchor != positive
        assert labels[anchor] == labels[positive]
        assert labels[negative] != labels[anchor]


def test_triple_sampler_is_seeded_per_epoch() -> None:
    labels = imageset_with_counts([3, 3, 3]).labels
    sampler = TripleBatchSampler(labels, 4, steps=2, seed=5)
    first = list(sampler)
    assert first == list(sampler)
    sampler.set_epoch(1)
    assert first != list(sampler)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(2, 8), min_size=1, max_size=8), st.integers(1, 7), st.integers(0, 1000))
def test_support_and_query_never_share_an_image(counts: list[int], shot: int, seed: int) -> None:
    imageset = imageset_with_counts(counts)
    if min(counts) < shot + 1:
        with pytest.raises(PdfewshotError, match=f"shot {shot} needs at least {shot + 1} images per class"):
            split_support_query(imageset, shot, np.random.default_rng(seed))
        return
    support, query = split_support_query(imageset, shot, np.random.default_rng(seed))
    assert not set(support.tolist()) & set(query.tolist())
    assert len(support) + len(query) == len(imageset)
    assert np.bincount(imageset.labels[support]).tolist() == [shot] * len(counts)


def test_rotations_add_three_rotated_classes() -> None:
    imageset = ImageSet(
        images=np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1),
        labels=np.array([0, 1]),
        class_names=("a", "b"),
        keys=("a/1", "b/1"),
    )
    rotated = imageset.with_rotations()
    assert rotated.class_names == ("a", "b", "a@rot90", "b@rot90", "a@rot180", "b@rot180", "a@rot270", "b@rot270")
    np.testing.assert_array_equal(rotated.images[2, :, :, 0], np.rot90(imageset.images[0, :, :, 0]))
    assert rotated.labels.tolist() == list(range(8))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 50), st.integers(1, 16), st.integers(0, 100))
def test_shuffled_batches_cover_every_index_each_epoch(count: int, batch_size: int, seed: int) -> None:
    steps = -(-count // batch_size)
    sampler = ShuffledBatchSampler(count, batch_size, steps, seed)
    batches = list(sampler)
    assert len(batches) == steps and all(len(b) == batch_size for b in batches)
    seen = [i for batch in batches for i in batch]
    assert set(seen) == set(range(count))
    assert batches == list(sampler)
    if count > 2:  # epochs reshuffle: two may coincide by chance (1 in 6 for 3 images), ten hardly
        orders = set()
        for epoch in range(10):
            sampler.set_epoch(epoch)
            orders.add(tuple(i for batch in sampler for i in batch))
        assert len(orders) > 1


def test_held_out_images_come_from_classes_that_can_spare_them_and_are_seeded() -> None:
    images = imageset_with_counts([5, 6, 9, 12, 20])
    kept, held = hold_out_images(images, seed=0)
    assert np.bincount(held.labels, minlength=5).tolist() == [0, 2, 3, 4, 5]  # min(5, n // 3), none below 6
    assert sorted(kept.keys + held.keys) == sorted(images.keys) and not set(kept.keys) & set(held.keys)
    assert hold_out_images(images, seed=0)[1].keys == held.keys
    assert hold_out_images(images, seed=1)[1].keys != held.keys


def test_held_out_images_stop_when_they_give_enough_pairs() -> None:
    _, held = hold_out_images(imageset_with_counts([20] * 100), seed=0)
    # 5 of each class: 10 same-class pairs a class, so 20 classes give the pairs wanted
    assert HELD_OUT_SAME_PAIRS == 200 and len(np.unique(held.labels)) == 20 and len(held.labels) == 100


def test_episodes_take_whole_groups_of_distinct_classes_with_images_of_their_own_class() -> None:
    labels = np.repeat(np.arange(6), [3, 3, 3, 3, 2, 4])
    groups = np.array([0, 0, 0, 1, 1, 1])
    sampler = EpisodeBatchSampler(labels, groups, batch_size=3, steps=20, seed=4)
    sampler.set_epoch(0)
    batches = list(sampler)
    assert len(batches) == 20
    for episode in batches:
        classes = [int(labels[support]) for support, _, _ in episode]
        assert len(set(classes)) == 3 and len({int(groups[c]) for c in classes}) == 1  # one whole group
        assert all(labels[first] == labels[second] == labels[support] for support, first, second in episode)
    sampler.set_epoch(0)
    assert list(sampler) == batches


def test_class_groups_are_the_folder_and_the_rotation() -> None:
    names = ["Greek/a", "Greek/b", "Greek/a@rot90", "Latin/a", "plain"]
    groups = class_groups(names)
    assert groups[0] == groups[1] and len(set(groups.tolist())) == 4
