"""Every registered architecture honours the same contract: (N, C, H, W) -> (N, 1, H, W) logits that train."""

import pytest
import torch
from cxlseg.training.models import (
    MODELS,
    AttentionGate,
    NestedUNet,
    SpatialAttention,
    count_parameters,
    create_model,
)

torch.set_num_threads(1)


class ModelContract:
    """Shared checks; each architecture's test class sets ``name`` and tiny ``kwargs``."""

    name: str = ""
    kwargs: dict = {}
    every_parameter_used = True  # smp encoders keep unused deep stages when encoder_depth < 5
    odd_sizes = True  # smp models require sides divisible by 2**encoder_depth (the pipeline feeds 224 or 160)

    def make(self, in_channels: int = 1) -> torch.nn.Module:
        torch.manual_seed(0)
        return create_model(self.name, in_channels=in_channels, **self.kwargs)

    @pytest.mark.parametrize("in_channels", [1, 3])
    def test_forward_backward_64(self, in_channels):
        model = self.make(in_channels)
        x = torch.rand(2, in_channels, 64, 64, requires_grad=True)
        logits = model(x)
        assert logits.shape == (2, 1, 64, 64)
        logits.mean().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    @pytest.mark.parametrize("in_channels", [1, 3])
    def test_forward_224_eval(self, in_channels):
        model = self.make(in_channels).eval()
        with torch.no_grad():
            logits = model(torch.rand(1, in_channels, 224, 224))
        assert logits.shape == (1, 1, 224, 224)
        assert torch.isfinite(logits).all()

    def test_parameters_counted(self):
        assert count_parameters(self.make()) > 0

    def test_gradients_reach_first_and_last_layers(self):
        model = self.make()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(torch.rand(2, 1, 64, 64)), torch.randint(0, 2, (2, 1, 64, 64)).float()
        )
        loss.backward()
        params = [p for p in model.parameters() if p.requires_grad]
        assert params[0].grad is not None and params[0].grad.abs().sum() > 0, "no gradient at the input layer"
        assert params[-1].grad is not None and params[-1].grad.abs().sum() > 0, "no gradient at the head"
        grads = [p.grad for p in params if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads)
        if self.every_parameter_used:
            assert len(grads) == len(params)

    def test_odd_input_size_keeps_shape(self):
        if not self.odd_sizes:
            pytest.skip("smp models need sides divisible by 2**encoder_depth")
        model = self.make().eval()
        with torch.no_grad():
            assert model(torch.rand(1, 1, 67, 45)).shape == (1, 1, 67, 45)

    def test_same_seed_same_weights(self):
        a, b = self.make().state_dict(), self.make().state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


class TestUnet(ModelContract):
    name = "unet"
    kwargs = dict(encoder_name="resnet18", encoder_depth=3, base_channels=4)
    every_parameter_used = False
    odd_sizes = False


class TestUnetPlusPlus(ModelContract):
    name = "unetplusplus"
    kwargs = dict(encoder_name="resnet18", encoder_depth=3, base_channels=4)
    every_parameter_used = False
    odd_sizes = False


class TestAttentionUnet(ModelContract):
    name = "attention_unet"
    kwargs = dict(base_channels=4)


class TestSAUnet(ModelContract):
    name = "sa_unet"
    kwargs = dict(base_channels=4)


class TestPlainUnet(ModelContract):
    name = "plain_unet"
    kwargs = dict(base_channels=4)


class TestPlainUnetPlusPlus(ModelContract):
    name = "plain_unetplusplus"
    kwargs = dict(base_channels=4)


def test_registry_holds_the_paper_architectures_and_the_authors_unet():
    assert set(MODELS) == {"unet", "unetplusplus", "attention_unet", "sa_unet", "plain_unet", "plain_unetplusplus"}


def test_registry_matches_the_schema():
    from cxlseg.config import load_schema

    models = load_schema()["properties"]["models"]["properties"]
    assert set(models["architectures"]["items"]["enum"]) == set(MODELS)
    assert set(models["inference_model"]["enum"]) - {None} == set(MODELS)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="attention_unet, plain_unet, plain_unetplusplus, sa_unet, unet, unetplusplus"):
        create_model("segnet")


def test_bad_channel_count_rejected():
    with pytest.raises(ValueError, match="in_channels"):
        create_model("sa_unet", in_channels=2)


def test_plain_unet_defaults_follow_the_authors_code():
    """CXLSeg segmentation/train.py: widths 64..1024, conv -> BN -> Dropout(0.1) -> ReLU, 2x2 up-convs."""
    model = create_model("plain_unet", in_channels=3)
    assert [block[0][0].out_channels for block in model.encoder.blocks] == [64, 128, 256, 512, 1024]
    assert model.encoder.blocks[0][0][0].in_channels == 3
    unit = model.encoder.blocks[0][0]
    assert [type(m) for m in unit] == [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Dropout, torch.nn.ReLU]
    assert unit[0].kernel_size == (3, 3) and unit[2].p == 0.1
    ups = [stage.up for stage in model.decoder.stages]
    assert [u.out_channels for u in ups] == [512, 256, 128, 64]
    assert all(isinstance(u, torch.nn.ConvTranspose2d) and u.kernel_size == u.stride == (2, 2) for u in ups)
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 1
    assert not any(
        isinstance(m, (AttentionGate, SpatialAttention)) or type(m).__name__ == "DropBlock" for m in model.modules()
    )


def test_plain_unet_base_channels_scales_every_level():
    model = create_model("plain_unet", base_channels=8)
    assert [block[0][0].out_channels for block in model.encoder.blocks] == [8, 16, 32, 64, 128]


def test_plain_unet_dropout_is_stochastic_only_in_training():
    model = create_model("plain_unet", base_channels=4)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))


def test_sa_unet_defaults_follow_the_paper():
    model = create_model("sa_unet")
    first_conv = model.encoder.blocks[0][0][0]
    assert first_conv.out_channels == 16  # base 16 channels
    assert len(model.encoder.blocks) == 4  # 4 levels
    assert any(isinstance(m, SpatialAttention) for m in model.encoder.blocks[-1].modules())  # SA at the bottleneck
    assert sum(m.__class__.__name__ == "DropBlock" for m in model.modules()) > 0


def test_sa_unet_dropblock_is_stochastic_only_in_training():
    model = create_model("sa_unet", base_channels=4, drop_prob=0.3)
    x = torch.rand(1, 1, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_attention_unet_gates_every_skip():
    model = create_model("attention_unet", base_channels=4, levels=4)
    gates = [m for m in model.modules() if isinstance(m, AttentionGate)]
    assert len(gates) == 3


def test_attention_gate_coefficients_suppress_when_psi_is_negative():
    gate = AttentionGate(skip_channels=4, gate_channels=8).eval()
    torch.nn.init.zeros_(gate.psi.weight)
    torch.nn.init.constant_(gate.psi.bias, -50.0)  # sigmoid -> 0: the skip is blocked
    torch.nn.init.zeros_(gate.out[0].bias)
    x, g = torch.rand(1, 4, 16, 16), torch.rand(1, 8, 8, 8)
    with torch.no_grad():
        blocked = gate(x, g)
    expected = gate.out(torch.zeros_like(x))
    assert torch.allclose(blocked, expected, atol=1e-6)


def test_plain_unetplusplus_is_zhou_et_al_nested_unet_without_deep_supervision():
    """U-Net++: node X[i][j] takes X[i][0..j-1] and the up-convolved X[i+1][j-1]; 10 decoder nodes at 5 levels;
    one head on X[0][4] (deep supervision off); widths 32..512 by default (Zhou et al.'s code)."""
    model = create_model("plain_unetplusplus", in_channels=3)
    assert isinstance(model, NestedUNet)
    assert [block[0][0].out_channels for block in model.encoder.blocks] == [32, 64, 128, 256, 512]
    assert sorted(model.nodes) == sorted(f"{i}_{j}" for j in range(1, 5) for i in range(5 - j))
    for key, node in model.nodes.items():
        i, j = map(int, key.split("_"))
        assert node[0][0].in_channels == (j + 1) * 32 * 2**i, key  # j same-level nodes + one up-convolved
        assert model.ups[key].in_channels == 32 * 2 ** (i + 1) and model.ups[key].stride == (2, 2)
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert heads == [model.head] and model.head.in_channels == 32


def test_plain_unetplusplus_output_depends_on_every_column():
    """The dense skips carry information: zeroing an intermediate node's weights changes the output."""
    torch.manual_seed(0)
    model = create_model("plain_unetplusplus", base_channels=4).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        torch.nn.init.zeros_(model.nodes["1_1"][0][0].weight)
        assert not torch.allclose(before, model(x))
