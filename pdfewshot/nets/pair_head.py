"""Koch et al. (2015)'s Siamese pair head: p(same) = sigmoid(sum_j alpha_j |h1_j - h2_j| + b)."""

import paddle
from paddle import nn


class PairHead(nn.Layer):  # type: ignore[misc]
    """Scores a pair of embeddings by a learnt weighting of their component-wise L1 distance."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.weigh = nn.Linear(embedding_dim, 1)

    def forward(self, first: paddle.Tensor, second: paddle.Tensor) -> paddle.Tensor:
        """Logits ``[N]`` (apply a sigmoid for the probability that the two are of one class)."""
        return self.weigh((first - second).abs()).reshape([-1])

    def pairwise(self, queries: paddle.Tensor, support: paddle.Tensor) -> paddle.Tensor:
        """Logits ``[queries, support]`` for every query against every support embedding."""
        distance = (queries[:, None, :] - support[None, :, :]).abs()
        return self.weigh(distance).squeeze(-1)
