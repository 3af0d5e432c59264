"""Any timm model by name, for transfer learning, with pretrained weights from one of:

1. a local weights file (`pretrained_path`): a timm-format state dict (.safetensors,
   .pth, .bin), e.g. the `model.safetensors` of the model's Hugging Face hub repository;
2. the local Hugging Face cache, when an earlier run downloaded them (works offline);
3. a download through timm, when the weights' host answers.

When none of these can work the build fails at once with one line that says how to
supply a local file: without the check, timm retries the download for about a minute
before it fails with a traceback. timm adapts the classifier to `num_classes` (a new,
randomly initialized head when it differs) and the first conv to `in_channels`.
"""

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
import timm
from torch import nn

from src.core.errors import ConfigError

CONNECT_TIMEOUT_S = 3.0
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def check_timm_model(model_name: str) -> None:
    """Fail with one line when timm has no model called `model_name`."""
    if timm.is_model(model_name):
        return
    close = difflib.get_close_matches(model_name, timm.list_models(), n=8, cutoff=0.6)
    raise ConfigError(f"unknown timm model {model_name!r}; close matches: "
                      f"{', '.join(close) or 'none'} (timm.list_models() lists all)")


def build_timm_model(model_name: str, *, num_classes: int, in_channels: int,
                     pretrained: bool = False, pretrained_path: str | None = None,
                     dropout: float = 0.0) -> nn.Module:
    """Create timm model `model_name` for `num_classes` classes and `in_channels` channels.

    pretrained: load pretrained weights (cache or download); pretrained_path: load them
    from this local file instead (implies pretrained). dropout: timm's `drop_rate`, the
    dropout before the classifier.
    """
    check_timm_model(model_name)
    kwargs = {"num_classes": num_classes, "in_chans": in_channels}
    if dropout > 0:  # only when asked: a few timm models take no drop_rate
        kwargs["drop_rate"] = dropout
    if pretrained_path is not None:
        return _with_weights_file(model_name, Path(pretrained_path), kwargs)
    if not pretrained:
        return _create(model_name, kwargs)
    pretrained_cfg = timm.models.get_pretrained_cfg(model_name)
    if pretrained_cfg is None or not (pretrained_cfg.hf_hub_id or pretrained_cfg.url):
        raise ConfigError(f"timm has no pretrained weights for {model_name!r}; set "
                          f"--model.pretrained false or pass --model.pretrained_path FILE")
    cached = _cached_weights(pretrained_cfg)
    if cached is not None:
        return _with_weights_file(model_name, cached, kwargs)
    host, port = _weights_host(pretrained_cfg)
    if _offline_mode() or not _reachable(host, port):
        raise ConfigError(
            f"cannot get pretrained weights for timm model {model_name!r}: they are not in "
            f"the local cache and {host} cannot be reached (offline); where there is "
            f"internet, run timm.create_model({model_name!r}, pretrained=True) and copy the "
            f"weights file it caches (under ~/.cache/huggingface/hub), then pass it with "
            f"--model.pretrained_path FILE")
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except (OSError, RuntimeError) as error:
        raise ConfigError(f"cannot load pretrained weights for timm model {model_name!r}: "
                          f"{_one_line(error)}; pass a local file with "
                          f"--model.pretrained_path FILE") from error


def _create(model_name: str, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(model_name, pretrained=False, **kwargs)
    except TypeError as error:  # e.g. a model that takes no drop_rate
        raise ConfigError(f"timm model {model_name!r} rejects these options: "
                          f"{_one_line(error)}") from error


def _with_weights_file(model_name: str, path: Path, kwargs: dict) -> nn.Module:
    """Create the model with the weights in `path`; every backbone tensor must come from it."""
    if not path.is_file():
        raise ConfigError(f"pretrained_path {str(path)!r} is not a file")
    try:
        file_keys = set(timm.models.load_state_dict(str(path)))
    except Exception as error:  # torch.load / safetensors raise many types
        raise ConfigError(f"cannot read weights file {str(path)!r}: {_one_line(error)}") \
            from error
    try:
        model = timm.create_model(model_name, pretrained=True,
                                  pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except RuntimeError as error:  # shape mismatches from load_state_dict
        raise ConfigError(f"weights file {str(path)!r} does not fit timm model "
                          f"{model_name!r}: {_one_line(error)[:300]}") from error
    # timm loads non-strictly when it replaces the head, so check the rest ourselves.
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    head_keys = {name for name, p in model.named_parameters() if id(p) in head_ids}
    model_keys = {key for key in model.state_dict() if not key.endswith("num_batches_tracked")}
    missing = sorted(model_keys - file_keys - head_keys)
    unexpected = sorted(file_keys - set(model.state_dict()))
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise ConfigError(
            f"weights file {str(path)!r} does not fit timm model {model_name!r}: "
            f"{len(missing)} model tensors missing from it, {len(unexpected)} unknown "
            f"tensors in it (e.g. {example!r})")
    return model


def _cached_weights(pretrained_cfg) -> Path | None:
    """The weights file in the local Hugging Face cache, if an earlier download left one."""
    if not pretrained_cfg.hf_hub_id:
        return None
    repo_id, _, revision = pretrained_cfg.hf_hub_id.partition("@")
    filenames = ([pretrained_cfg.hf_hub_filename] if pretrained_cfg.hf_hub_filename
                 else ["model.safetensors", "pytorch_model.bin"])  # timm's order
    for filename in filenames:
        found = huggingface_hub.try_to_load_from_cache(repo_id, filename,
                                                       revision=revision or None)
        if isinstance(found, str):
            return Path(found)
    return None


def _weights_host(pretrained_cfg) -> tuple[str, int]:
    url = huggingface_hub.constants.ENDPOINT if pretrained_cfg.hf_hub_id else pretrained_cfg.url
    parsed = urlparse(url)
    return parsed.hostname or url, parsed.port or (80 if parsed.scheme == "http" else 443)


def _offline_mode() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it only once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").upper()
    return value in _TRUE_VALUES or huggingface_hub.constants.HF_HUB_OFFLINE


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False
