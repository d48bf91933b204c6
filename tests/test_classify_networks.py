"""The classifier registry: every backbone, its stem and its CheXpert head."""

from __future__ import annotations

import pytest
import torch
from cxlseg.classify import networks
from cxlseg.config import default_config
from cxlseg.mimic import CHEXPERT_LABELS
from torch import nn

MODELS = tuple(networks.CLASSIFIERS)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _default_net(name):
    """The classifier the default config builds: one output per default label, gray stem, the authors' head."""
    c = default_config()["classify"]
    return networks.create_classifier(
        name,
        len(c["labels"]),
        in_channels=c["channels"],
        pretrained=c["pretrained"],
        hidden=c["head_hidden"],
        normalise=c["normalise"],
    )


def test_default_head_has_fourteen_outputs_over_a_hidden_layer():
    net = _default_net("resnet50").eval()
    head = net.backbone.fc
    assert isinstance(head, nn.Sequential) and head[0].out_features == 1024 and head[-1].out_features == 14
    assert net.backbone.conv1.in_channels == 1
    with torch.no_grad():
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, len(CHEXPERT_LABELS))


@pytest.mark.parametrize("name", MODELS)
def test_every_classifier_takes_small_gray_inputs(name):
    torch.manual_seed(0)
    net = networks.create_classifier(name, 14, in_channels=1, pretrained=False, hidden=8, normalise="imagenet").eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 32, 32)).shape == (2, 14)


def test_create_classifier_options():
    with pytest.raises(ValueError, match="'vgg16'.*resnet50, mobilenet_v2, densenet121, inception_v3"):
        networks.create_classifier("vgg16", 4, in_channels=3, pretrained=False, hidden=0, normalise="imagenet")
    rgb = networks.create_classifier(
        "mobilenet_v2", 2, in_channels=3, pretrained=False, hidden=0, normalise="imagenet"
    ).eval()
    assert isinstance(rgb.backbone.classifier[1], nn.Linear)
    with torch.no_grad():
        assert rgb(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    inception = networks.create_classifier(
        "inception_v3", 3, in_channels=1, pretrained=False, hidden=0, normalise="imagenet"
    )
    assert inception.backbone.AuxLogits is None and inception.min_size == 75
    # pretrained maps to torchvision's default weights (resolved here, never downloaded)
    from torchvision.models import Inception_V3_Weights, ResNet50_Weights

    assert networks.classifier_weights("resnet50", True) is ResNet50_Weights.DEFAULT
    assert networks.classifier_weights("inception_v3", True) is Inception_V3_Weights.DEFAULT
    assert networks.classifier_weights("densenet121", False) is None


def test_normalise_none_feeds_the_backbone_the_authors_0_1_pixels():
    """classify.normalise: none (the authors' from-scratch Keras input) vs the ImageNet default."""
    seen = []
    backbone = nn.Sequential(nn.Flatten(), nn.Identity())
    backbone[1].register_forward_hook(lambda module, args, out: seen.append(out.clone()))
    x = torch.rand(1, 1, 4, 4)
    networks.Classifier(backbone, 1, normalise="none")(x)
    networks.Classifier(backbone, 1)(x)
    assert torch.equal(seen[0], x.flatten(1)) and not torch.allclose(seen[1], x.flatten(1))
    with pytest.raises(ValueError, match="normalise must be one of imagenet, none"):
        networks.Classifier(backbone, 1, normalise="z")
