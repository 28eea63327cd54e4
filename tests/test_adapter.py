"""LoraAdapter: save/load, composition algebra, and refusal of bad files."""

from __future__ import annotations

import json
import pickle

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
