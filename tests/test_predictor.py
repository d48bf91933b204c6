"""The one predictor (cxlseg.inference.predictor) used by evaluation, selection, QC and the shard loop."""

import dataclasses

import numpy as np
import pytest
import torch
from cxlseg import preprocess
from cxlseg.inference.predictor import InputSpec, Predictor, ensemble_checkpoints
from cxlseg.training.checkpoint import load_model
from helpers.training import model_files


def test_input_spec_from_the_training_config(train_config):
    cfg = dataclasses.asdict(train_config(size=48, in_channels=3, clahe_clip=3.0, clahe_tiles=4, clahe_space="lab"))
    assert InputSpec.from_train_config(cfg) == InputSpec(48, 3, 3.0, 4, "lab")
    old = {k: v for k, v in cfg.items() if k != "clahe_space"}  # written before clahe_space existed
    assert InputSpec.from_train_config(old).clahe_space == "gray"


@pytest.mark.parametrize("space", ["gray", "lab"])
def test_prepare_resizes_first_then_clahe(toys, space):
    image = toys.radiograph_like(300, 260)
    spec = InputSpec(64, 1, 2.0, 8, space)
    expected = preprocess.clahe(preprocess.resize(image, 64), 2.0, 8, space)
    assert np.array_equal(spec.prepare(image), expected)
    assert not np.array_equal(spec.prepare(image), preprocess.resize(preprocess.clahe(image, 2.0, 8, space), 64))
    x = InputSpec(64, 3, 2.0, 8, space).to_tensor(np.stack([expected, expected]))
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    assert torch.equal(x[:, 0], x[:, 2]) and float(x.max()) <= 1.0


def test_tta_flip_averages_probabilities_of_the_mirrored_pass():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1).eval()  # not mirror-symmetric, so the flip changes the answer
    with torch.no_grad():
        model.weight.mul_(20)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = (torch.sigmoid(model(x)) + torch.sigmoid(model(x.flip(-1))).flip(-1)) / 2
        logit_mean = torch.sigmoid((model(x) + model(x.flip(-1)).flip(-1)) / 2)
    spec = InputSpec(8, 1, 2.0, 8)
    out = Predictor([model], spec, tta_flip=True).forward(x)
    assert np.allclose(out, expected[:, 0].numpy(), atol=1e-6)
    assert not np.allclose(out, logit_mean[:, 0].numpy(), atol=1e-4)  # probabilities are averaged, not logits
    assert not np.allclose(Predictor([model], spec).forward(x), expected[:, 0].numpy(), atol=1e-4)


def test_an_ensemble_averages_probabilities(toys):
    a, b = toys.DarkIsLung(), toys.DarkerThanMean()
    spec = toys.spec(32)
    x = torch.rand(3, 1, 32, 32)
    pa, pb = Predictor([a], spec).forward(x), Predictor([b], spec).forward(x)
    both = Predictor([a, b], spec).forward(x)
    assert np.allclose(both, (pa + pb) / 2, atol=1e-6)
    both_tta = Predictor([a, b], spec, tta_flip=True).forward(x)
    ta, tb = Predictor([a], spec, tta_flip=True).forward(x), Predictor([b], spec, tta_flip=True).forward(x)
    assert np.allclose(both_tta, (ta + tb) / 2, atol=1e-6)


def test_predict_returns_the_requested_resolution(trained):
    predictor = Predictor.from_checkpoints(trained.checkpoint, device="cpu", tta_flip=True)
    assert predictor.spec.net_size == 32 and predictor.model_id.startswith("sa_unet-")
    images = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    probs = predictor.predict(images, batch_size=2)
    assert probs.shape == (3, 40, 40) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    assert predictor.predict(images, out_size=56).shape == (3, 56, 56)
    again = predictor.predict(images, batch_size=2)
    assert np.array_equal(probs, again)


def test_predict_is_prepare_then_forward(toys):
    model = toys.Mirrored()
    spec = toys.spec(48)
    images = np.stack([toys.radiograph_like(100, 90, seed=s) for s in range(3)])
    for tta in (False, True):
        predictor = Predictor([model], spec, tta_flip=tta)
        x = spec.to_tensor(np.stack([spec.prepare(img) for img in images]))
        assert np.array_equal(predictor.predict(images, out_size=80, batch_size=3), predictor.forward(x, 80))


def test_from_checkpoints_ensemble_and_mismatch(trained, tmp_path, train_config):
    pair = Predictor.from_checkpoints([trained.checkpoint, trained.folder / "checkpoint_last.pt"], device="cpu")
    single = Predictor.from_checkpoints(trained.checkpoint, device="cpu")
    _, meta = load_model(trained.checkpoint)
    assert single.model_id == meta["model_id"] and len(pair.models) == 2 and pair.model_id.count("+") == 1
    with pytest.raises(ValueError, match="at least one checkpoint"):
        Predictor.from_checkpoints([])
    # an ensemble must share its input preprocessing
    from cxlseg.training.trainer import train_model

    train_model(trained.store, model_files(tmp_path / "lab"), train_config(epochs=1, clahe_space="lab"))
    with pytest.raises(ValueError, match="preprocessing"):
        Predictor.from_checkpoints([trained.checkpoint, tmp_path / "lab" / "checkpoint_best.pt"], device="cpu")


def test_a_model_with_the_wrong_output_is_named():
    model = torch.nn.Conv2d(1, 2, 1)
    with pytest.raises(ValueError, match=r"expected \(N,1,H,W\)"):
        Predictor([model], InputSpec(8, 1, 2.0, 8)).forward(torch.rand(1, 1, 8, 8))


def test_predict_batch_reports_member_and_flip_agreement(toys):
    """Agreement is the Dice between thresholded masks: 1 for identical members, lower when they differ."""
    spec = toys.spec(32)
    ramp = torch.linspace(0, 1, 32).expand(32, 32)  # every gray level, so a shifted threshold moves the mask
    x = torch.stack([ramp, ramp.T, 1 - ramp])[:, None].contiguous()
    same = Predictor([toys.DarkIsLung(), toys.DarkIsLung()], spec, tta_flip=True).predict_batch(x, threshold=0.5)
    assert np.allclose(same.member_agreement, 1.0) and np.allclose(same.member_agreement_min, 1.0)
    assert same.prob.shape == (3, 32, 32) and same.flip_agreement.shape == (3,)
    mixed = Predictor([toys.DarkIsLung(), toys.Mirrored()], spec).predict_batch(
        x, threshold=0.5
    )  # (flips would cancel the ramp)
    assert (mixed.member_agreement[:2] < 1).all() and (mixed.member_agreement_min <= mixed.member_agreement).all()
    assert (Predictor([toys.Mirrored()], spec, tta_flip=True).predict_batch(x, threshold=0.5).flip_agreement < 1).all()
    single = Predictor([toys.DarkIsLung()], spec).predict_batch(x, threshold=0.5)
    assert np.isnan(single.member_agreement).all() and np.isnan(single.flip_agreement).all()  # nothing to compare
    assert np.array_equal(single.prob, Predictor([toys.DarkIsLung()], spec).forward(x))
    assert set(mixed.agreement(0)) == {
        "member_agreement",
        "member_agreement_min",
        "flip_agreement",
        "perturb_agreement",
    }
    assert np.isnan(mixed.perturb_agreement).all()  # no perturbed pass asked for


def test_the_perturbed_pass_agrees_with_a_sure_network_and_not_with_a_guessing_one(toys):
    """perturb_agreement: Dice of the mask with the mask of a blurred, re-exposed input; a network whose mask
    hangs on fine detail (here: a threshold right at the film's grey level) loses it."""
    from cxlseg.inference.predictor import perturbed

    spec = toys.spec(32)
    sure = torch.zeros(1, 1, 32, 32)
    sure[..., 8:24, 4:14] = 1.0  # a crisp dark/bright layout: the perturbed copy keeps it
    x = 1 - sure
    steady = Predictor([toys.DarkIsLung()], spec, perturb=True).predict_batch(x, threshold=0.5)
    assert steady.perturb_agreement[0] > 0.9
    noise = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.2 + 0.3
    shaky = Predictor([toys.DarkIsLung()], spec, perturb=True).predict_batch(noise, threshold=0.5)
    assert shaky.perturb_agreement[0] < steady.perturb_agreement[0]
    assert perturbed(x).shape == x.shape and 0 <= float(perturbed(x).min()) <= float(perturbed(x).max()) <= 1


def test_ensemble_takes_the_selected_model_then_the_ranking():
    selected = {
        "architecture": "sa_unet",
        "checkpoint": "m/sa_unet.pt",
        "ranking": ["unet", "sa_unet", "attention_unet"],
        "checkpoints": {"unet": "m/unet.pt", "sa_unet": "m/sa_unet.pt", "attention_unet": "m/att.pt"},
    }  # sa_unet forced (models.inference_model) although unet ranks first
    assert ensemble_checkpoints(selected, 1) == ["m/sa_unet.pt"]
    assert ensemble_checkpoints(selected, 2) == ["m/sa_unet.pt", "m/unet.pt"]
    assert ensemble_checkpoints(selected, 9) == ["m/sa_unet.pt", "m/unet.pt", "m/att.pt"]
