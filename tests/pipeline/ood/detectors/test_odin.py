import torch

from pipeline.ood.detectors.odin import ODIN


def test_without_noise_odin_is_temperature_scaled_msp(real):
    inputs = torch.cat([real.test_inputs, real.ood_inputs])
    with torch.no_grad():
        logits = real.classifier(inputs)[1]
    expected = -torch.softmax(logits / 100.0, dim=1).amax(dim=1)
    torch.testing.assert_close(ODIN(noise=0.0).score_inputs(real.classifier, inputs), expected)


def test_the_perturbation_raises_the_scaled_confidence(real):
    """ODIN's premise: stepping against the gradient of the loss makes the predicted class more probable."""
    inputs = torch.cat([real.test_inputs, real.ood_inputs])
    perturbed = ODIN(noise=0.002).score_inputs(real.classifier, inputs)
    plain = ODIN(noise=0.0).score_inputs(real.classifier, inputs)
    assert (perturbed <= plain + 1e-7).all() and (perturbed < plain).any()


def test_each_image_is_perturbed_on_its_own(real):
    """The loss is summed over the batch, so a batch scores as its images scored one at a time."""
    inputs = torch.cat([real.test_inputs, real.ood_inputs])
    detector = ODIN()
    alone = torch.cat([detector.score_inputs(real.classifier, x[None]) for x in inputs])
    torch.testing.assert_close(detector.score_inputs(real.classifier, inputs), alone, rtol=1e-5, atol=1e-6)


def test_model_parameters_collect_no_gradient(real):
    ODIN().score_inputs(real.classifier, real.test_inputs)
    assert all(p.grad is None for p in real.classifier.parameters())
