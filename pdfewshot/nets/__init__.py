"""Networks: backbones, the embedding network and the cosine classifier. Knows nothing of stages."""
