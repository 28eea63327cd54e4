"""LoraAdapter: save/load, composition algebra, and refusal of bad files."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from agenthn_langgraph.errors import AdapterFormatError, AdapterMismatchError, AdapterNormError
from agenthn_langgraph.lora import AdapterMetadata, LoraAdapter


def _adapter(rank: int = 3, seed: int = 0, scaling: float = 0.5, fp: str = "base-a") -> LoraAdapter:
    g = torch.Generator().manual_seed(seed)
    w = {
        f"model.layers.{i}.mlp.down_proj": (torch.randn(rank, 12, generator=g), torch.randn(6, rank, generator=g))
        for i in range(2)
    }
    return LoraAdapter(w, metadata=AdapterMetadata(base_fingerprint=fp, source_sha256="ab"), scaling=scaling)


def _delta(ad: LoraAdapter, name: str) -> torch.Tensor:
    a, b = ad.weights[name]
    return ad.scaling * b @ a


def test_roundtrip_preserves_everything(tmp_path):
    ad = _adapter()
    path = ad.save(tmp_path / "ad")
    assert sorted(p.name for p in path.iterdir()) == ["adapter.json", "adapter.safetensors"]
    back = LoraAdapter.load(path)
    assert back.metadata == ad.metadata and back.scaling == ad.scaling
    for name in ad.weights:
        assert torch.equal(back.weights[name][0], ad.weights[name][0])
        assert torch.equal(back.weights[name][1], ad.weights[name][1])
    assert LoraAdapter.bytes_on_disk(path) > ad.nbytes  # tensors plus headers


def test_compose_is_weighted_sum_of_deltas():
    a1, a2 = _adapter(seed=1, scaling=0.5), _adapter(rank=2, seed=2, scaling=2.0)
    c = LoraAdapter.compose([a1, a2], weights=[1.0, -0.25])
    assert c.rank == 5 and c.scaling == 1.0 and c.metadata.n_chunks == 2 and c.metadata.kind == "composed"
    for name in a1.weights:
        torch.testing.assert_close(_delta(c, name), _delta(a1, name) - 0.25 * _delta(a2, name))


def test_compose_refuses_mixed_bases_and_bad_args():
    with pytest.raises(AdapterMismatchError):
        LoraAdapter.compose([_adapter(fp="a"), _adapter(fp="b")])
    with pytest.raises(ValueError):
        LoraAdapter.compose([])
    with pytest.raises(ValueError):
        LoraAdapter.compose([_adapter()], weights=[1.0, 2.0])
    with pytest.raises(TypeError):
        LoraAdapter.compose(["not an adapter"])  # type: ignore[list-item]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_adapters_are_refused_when_made_and_loaded(tmp_path, bad):
    ad = _adapter()
    name = next(iter(ad.weights))
    a, b = ad.weights[name]
    a = a.clone()
    a[0, 0] = bad
    with pytest.raises(AdapterNormError):
        LoraAdapter({name: (a, b)}, metadata=ad.metadata)
    # a file written by someone else with NaN in it is refused on load too
    path = ad.save(tmp_path / "ad")
    tensors = {f"{n}.lora_A": w[0] for n, w in ad.weights.items()} | {
        f"{n}.lora_B": w[1] for n, w in ad.weights.items()
    }
    tensors[f"{name}.lora_A"] = a
    save_file(tensors, str(path / "adapter.safetensors"))
    _rehash(path)  # a consistent file, just with NaN in it: the norm check must catch it
    with pytest.raises(AdapterNormError):
        LoraAdapter.load(path)


def test_absurd_norm_is_refused():
    ad = _adapter()
    name = next(iter(ad.weights))
    a, b = ad.weights[name]
    with pytest.raises(AdapterNormError):
        LoraAdapter({name: (a * 1e4, b)}, metadata=ad.metadata)


def test_truncated_weights_file(tmp_path):
    path = _adapter().save(tmp_path / "ad")
    data = (path / "adapter.safetensors").read_bytes()
    (path / "adapter.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterFormatError, match="safetensors"):
        LoraAdapter.load(path)


def test_pickle_in_place_of_safetensors_is_not_unpickled(tmp_path):
    path = _adapter().save(tmp_path / "ad")
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (path / "adapter.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(AdapterFormatError):
        LoraAdapter.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda cfg: cfg.update(format="something-else"),
        lambda cfg: cfg.update(version=99),
        lambda cfg: cfg.pop("metadata"),
        lambda cfg: cfg["modules"].update({"extra.module": {"rank": 1, "d_in": 1, "d_out": 1}}),
        lambda cfg: next(iter(cfg["modules"].values())).update(rank=7),
    ],
    ids=["foreign-format", "future-version", "no-metadata", "module-without-tensors", "wrong-shape"],
)
def test_foreign_or_inconsistent_config(tmp_path, mutate):
    path = _adapter().save(tmp_path / "ad")
    cfg = json.loads((path / "adapter.json").read_text())
    mutate(cfg)
    (path / "adapter.json").write_text(json.dumps(cfg))
    with pytest.raises(AdapterFormatError):
        LoraAdapter.load(path)


def test_garbage_and_missing_files(tmp_path):
    with pytest.raises(AdapterFormatError, match="not an adapter directory"):
        LoraAdapter.load(tmp_path / "nope")
    path = _adapter().save(tmp_path / "ad")
    (path / "adapter.json").write_bytes(b"\x00\xff not json")
    with pytest.raises(AdapterFormatError):
        LoraAdapter.load(path)
    (path / "adapter.json").unlink()
    with pytest.raises(AdapterFormatError, match="missing adapter.json"):
        LoraAdapter.load(path)


def test_peft_directory_is_not_mistaken_for_ours(tmp_path):
    from agenthn_langgraph.lora import export_peft

    path = export_peft(_adapter(), tmp_path / "peft")
    with pytest.raises(AdapterFormatError):
        LoraAdapter.load(path)


# ------------------------------------------------------------------------------ checksums
def _rehash(path: Path) -> None:
    """Record the weights file's current sha256 in adapter.json (what a consistent writer would do)."""
    cfg = json.loads((path / "adapter.json").read_text())
    cfg["sha256"] = hashlib.sha256((path / "adapter.safetensors").read_bytes()).hexdigest()
    (path / "adapter.json").write_text(json.dumps(cfg))


def _data_region(raw: bytes) -> tuple[int, int]:
    """(start, end) of the tensor bytes in a safetensors file: after the 8-byte length and the JSON header."""
    (header_len,) = struct.unpack("<Q", raw[:8])
    return 8 + header_len, len(raw)


def _tensors_of(raw: bytes, ad: LoraAdapter) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The adapter's tensors as the (possibly corrupted) file holds them, parsed without any check."""
    from safetensors.torch import load

    t = load(raw)
    return {n: (t[f"{n}.lora_A"], t[f"{n}.lora_B"]) for n in ad.weights}


def test_untouched_file_loads_verified(tmp_path):
    ad = _adapter()
    path = ad.save(tmp_path / "ad")
    cfg = json.loads((path / "adapter.json").read_text())
    assert cfg["version"] == 2
    assert cfg["sha256"] == hashlib.sha256((path / "adapter.safetensors").read_bytes()).hexdigest()
    back = LoraAdapter.load(path, require_checksum=True)
    assert back.file_sha256 == cfg["sha256"] and ad.file_sha256 is None
    assert all(torch.equal(back.weights[n][0], ad.weights[n][0]) for n in ad.weights)


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_one_flipped_byte_in_the_tensor_data_is_refused(tmp_path, where):
    ad = _adapter()
    path = ad.save(tmp_path / "ad")
    raw = bytearray((path / "adapter.safetensors").read_bytes())
    start, end = _data_region(bytes(raw))
    pos = start + int((end - start - 1) * where)
    raw[pos] ^= 0x01  # the lowest bit of one byte: every value stays finite and plausible
    (path / "adapter.safetensors").write_bytes(bytes(raw))
    LoraAdapter(_tensors_of(bytes(raw), ad), metadata=ad.metadata, scaling=ad.scaling)  # passes validation
    with pytest.raises(AdapterFormatError, match="checksum"):
        LoraAdapter.load(path)


def test_mantissa_flips_in_five_percent_of_floats_are_refused(tmp_path):
    ad = _adapter(rank=4)
    path = ad.save(tmp_path / "ad")
    raw = bytearray((path / "adapter.safetensors").read_bytes())
    start, end = _data_region(bytes(raw))
    n_floats = (end - start) // 4
    rng = random.Random(0)
    picked = rng.sample(range(n_floats), max(1, n_floats * 5 // 100))
    for i in picked:
        (word,) = struct.unpack_from("<I", raw, start + 4 * i)
        struct.pack_into("<I", raw, start + 4 * i, word ^ (1 << rng.randrange(23)))  # one mantissa bit
    (path / "adapter.safetensors").write_bytes(bytes(raw))
    corrupted = LoraAdapter(_tensors_of(bytes(raw), ad), metadata=ad.metadata, scaling=ad.scaling)  # plausible
    assert any(not torch.equal(corrupted.weights[n][0], ad.weights[n][0]) for n in ad.weights)
    with pytest.raises(AdapterFormatError, match="checksum"):
        LoraAdapter.load(path)


def test_checksum_field_is_required_and_checked(tmp_path):
    path = _adapter().save(tmp_path / "ad")
    cfg = json.loads((path / "adapter.json").read_text())
    (path / "adapter.json").write_text(json.dumps({**cfg, "sha256": "0" * 64}))
    with pytest.raises(AdapterFormatError, match="checksum"):
        LoraAdapter.load(path)
    (path / "adapter.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "sha256"}))
    with pytest.raises(AdapterFormatError, match="sha256"):
        LoraAdapter.load(path)  # a version-2 file without its checksum is not a version-1 file
    (path / "adapter.json").write_text(json.dumps({**cfg, "sha256": "not hex"}))
    with pytest.raises(AdapterFormatError):
        LoraAdapter.load(path)


def test_version_1_files_load_unverified_and_upgrade_on_save(tmp_path):
    ad = _adapter()
    path = ad.save(tmp_path / "v1")
    cfg = json.loads((path / "adapter.json").read_text())
    del cfg["sha256"]
    (path / "adapter.json").write_text(json.dumps({**cfg, "version": 1}))  # as written before checksums
    old = LoraAdapter.load(path)
    assert old.file_sha256 is None and old.metadata == ad.metadata
    assert all(torch.equal(old.weights[n][1], ad.weights[n][1]) for n in ad.weights)
    with pytest.raises(AdapterFormatError, match="version-1"):
        LoraAdapter.load(path, require_checksum=True)
    upgraded = LoraAdapter.load(old.save(tmp_path / "v2"), require_checksum=True)
    assert upgraded.file_sha256 is not None
    assert json.loads((tmp_path / "v2" / "adapter.json").read_text())["version"] == 2
