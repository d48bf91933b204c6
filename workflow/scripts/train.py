"""Rule train: one architecture on the training store."""
from pathlib import Path

from cxlseg.io import log_to
from cxlseg.train import TrainConfig, train_model

with log_to(snakemake.log[0]):
    t = {**snakemake.config["train"], **snakemake.params.train}  # performance keys come from config
    m, p = snakemake.params.models, snakemake.params.preprocess
    arch = snakemake.wildcards.arch
    cfg = TrainConfig(
        architecture=arch,
        epochs=t["epochs"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        weight_decay=t["weight_decay"],
        scheduler=t["scheduler"],
        bce_weight=t["bce_weight"],
        dice_weight=t["dice_weight"],
        num_workers=min(t["num_workers"], snakemake.threads),
        device=t["device"],
        amp=t["amp"],
        max_train_batches=t["max_train_batches"],
        select_metric=t["select_metric"],
        augment_online=t["augment_online"],
        augment_preset=t["augment_preset"],
        patience=t["patience"],
        size=t["input_size"] or p["size"],
        in_channels=p["channels"],
        clahe_clip=p["clahe_clip"],
        clahe_tiles=p["clahe_tiles"],
        encoder_name=m["encoder_name"],
        encoder_weights=m["encoder_weights"],
        base_channels=m["sa_unet_base_channels"] if arch == "sa_unet" else m["base_channels"],
        seed=snakemake.params.seed,
    )
    train_model(Path(snakemake.input.store[0]).parent, Path(snakemake.output.checkpoint).parent, cfg)
