import numpy as np

from pdfewshot.data.views import ViewedFeatures, distorted_copies, view_features


def _glyphs(count: int) -> np.ndarray:
    """White 28 px images, each with a black bar at its own place."""
    images = np.full((count, 28, 28, 1), 255, np.uint8)
    for i in range(count):
        images[i, 4 + 2 * i : 8 + 2 * i, 6:22] = 0
    return images


def _tagged(views: int, images: int, dim: int = 3) -> ViewedFeatures:
    """Features whose first component says which view and image they belong to: 10 * view + image."""
    every = np.zeros((1 + views, images, dim), np.float32)
    every[..., 0] = 10 * np.arange(1 + views)[:, None] + np.arange(images)[None, :]
    return ViewedFeatures(every[0], every[1:])


def test_without_views_support_and_queries_are_the_features_unchanged() -> None:
    features = ViewedFeatures.without_views(np.arange(12, dtype=np.float32).reshape(4, 3))
    index, labels = np.array([[0, 2], [3, 1]]), np.array([[0, 1], [1, 0]])
    support, support_labels = features.support(index, labels)
    np.testing.assert_array_equal(support, features.original[index])
    np.testing.assert_array_equal(support_labels, labels)
    # pixel features are not unit length: no views must leave them unnormalised
    np.testing.assert_array_equal(features.queries(index), features.original[index])


def test_support_copies_follow_their_images_with_their_labels() -> None:
    features = _tagged(views=2, images=5)
    index = np.array([[4, 1, 3], [0, 2, 4]])  # two episodes, three support images each
    labels = np.array([[0, 1, 2], [2, 0, 1]])
    support, support_labels = features.support(index, labels)
    assert support.shape == (2, 9, 3) and support_labels.shape == (2, 9)
    # the images themselves first, then copy 1 of each, then copy 2
    np.testing.assert_array_equal(support[0, :, 0], [4, 1, 3, 14, 11, 13, 24, 21, 23])
    np.testing.assert_array_equal(support_labels[0], [0, 1, 2] * 3)
    np.testing.assert_array_equal(support[1, :, 0], [0, 2, 4, 10, 12, 14, 20, 22, 24])
    np.testing.assert_array_equal(support_labels[1], [2, 0, 1] * 3)
    # a single run: one-dimensional index
    single, single_labels = features.support(np.array([2, 0]), np.array([0, 1]))
    np.testing.assert_array_equal(single[:, 0], [2, 0, 12, 10, 22, 20])
    np.testing.assert_array_equal(single_labels, [0, 1, 0, 1, 0, 1])


def test_a_query_is_the_normalised_mean_of_its_views() -> None:
    original = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    copies = np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32)  # one view: image 0's copy points along y
    queries = ViewedFeatures(original, copies).queries(np.array([[0, 1]]))
    # mean of (1, 0) and (0, 1) is (0.5, 0.5): unit length (0.7071, 0.7071); image 1's views agree
    np.testing.assert_allclose(queries, [[[0.5**0.5, 0.5**0.5], [0.0, 1.0]]], rtol=1e-6)


def test_distorted_copies_are_seeded_and_change_the_images() -> None:
    images = _glyphs(4)
    copies = distorted_copies(images, 3, seed=5)
    assert copies.shape == (3, *images.shape) and copies.dtype == np.uint8
    np.testing.assert_array_equal(copies, distorted_copies(images, 3, seed=5))
    assert not np.array_equal(copies, distorted_copies(images, 3, seed=6))
    assert any(not np.array_equal(copy, image) for view in copies for copy, image in zip(view, images, strict=True))
    assert distorted_copies(images, 0, seed=5).shape == (0, *images.shape)


def test_view_features_embeds_images_and_copies_in_one_call() -> None:
    images = _glyphs(3)
    calls: list[int] = []

    def ink(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return (255 - batch.reshape(len(batch), -1)).astype(np.float32)

    viewed = view_features(ink, images, views=2, seed=0)
    assert calls == [9] and viewed.views == 2
    np.testing.assert_array_equal(viewed.original, ink(images))
    np.testing.assert_array_equal(
        viewed.copies, ink(distorted_copies(images, 2, seed=0).reshape(6, 28, 28, 1)).reshape(2, 3, -1)
    )
    assert view_features(ink, images, views=0, seed=0).copies.shape == (0, 3, 28 * 28)
