import numpy as np
import torch
import torch.nn.functional as F

from pipeline.ood.detectors.gradnorm import GradNorm


def test_closed_form_equals_the_l1_norm_of_the_last_layer_gradient(real):
    """The paper's definition: backpropagate KL(uniform || softmax) to the head weights, one at a time."""
    features, logits = real.ood
    head = torch.nn.Linear(real.train.feature_dim, 2).double()
    with torch.no_grad():
        head.weight.copy_(real.train.weight)
        head.bias.copy_(real.train.bias)
    norms = []
    for a in features.double():
        head.zero_grad()
        log_probs = F.log_softmax(head(a[None]), dim=1)
        loss = F.kl_div(log_probs, torch.full_like(log_probs, 0.5), reduction="sum")
        loss.backward()
        norms.append(head.weight.grad.abs().sum().item())
    np.testing.assert_allclose(GradNorm().score(features, logits).numpy(), -np.array(norms), rtol=1e-4)
