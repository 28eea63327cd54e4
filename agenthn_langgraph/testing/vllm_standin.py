"""A stand-in for a vLLM server, for tests on machines where vLLM cannot run. It is not vLLM.

vLLM's PyPI wheels are CUDA builds; this serves the few endpoints the client uses, on loopback, and
refuses what vLLM refuses when it loads a LoRA (rules and messages modelled on vLLM's
``lora/peft_helper.py``, ``lora/models.py`` and ``entrypoints/openai/serving_models.py``):

- ``adapter_config.json`` missing, or without ``r`` / ``lora_alpha`` / ``target_modules``;
- ``r`` above the server's ``max_lora_rank``; DoRA; a bias; ``modules_to_save``;
- a weight whose name is not ``base_model.model.<module>.lora_{A,B}.weight`` for a linear module
  vLLM adapts in this architecture (q/k/v/o/gate/up/down projections), or whose shape is wrong;
- a name already loaded; unloading or chatting with an unknown name.

It answers for real: each adapter is loaded into the Hugging Face base with ``peft`` (every token
of the reply, as vLLM applies it), generation is greedy with the base's chat template.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

SUPPORTED_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_WEIGHT = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")


class StandInError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class VLLMStandIn:
    """``with VLLMStandIn(base_dir, served_name) as server: server.url`` -- a loopback server thread."""

    def __init__(self, base_dir: str | Path, served_name: str, *, max_lora_rank: int = 16, check_rank: bool = True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.served_name = served_name
        self.max_lora_rank = max_lora_rank
        self.check_rank = check_rank  # False only to show a test catches a server that does not check
        self.tokenizer = AutoTokenizer.from_pretrained(base_dir)
        self.base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
        self.model: Any = None  # the PeftModel once an adapter is loaded
        self.loaded: dict[str, str] = {}
        self.loads = 0  # successful load requests, for tests
        self._lock = threading.Lock()  # one request at a time touches the model
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ vLLM's rules
    def load(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self.loaded:
            raise StandInError(400, f"The lora adapter '{name}' has already been loaded.")
        directory = Path(path)
        config_path = directory / "adapter_config.json"
        if not config_path.is_file():
            raise StandInError(404, f"No adapter found for {path}", "NotFoundError")
        config = json.loads(config_path.read_text())
        missing = [k for k in ("r", "lora_alpha", "target_modules") if k not in config]
        if missing:
            raise StandInError(400, f"Missing required configuration fields: {missing}")
        if self.check_rank and config["r"] > self.max_lora_rank:
            raise StandInError(400, f"LoRA rank {config['r']} is greater than max_lora_rank {self.max_lora_rank}.")
        if config.get("use_dora"):
            raise StandInError(400, "vLLM does not yet support DoRA.")
        if config.get("bias", "none") != "none":
            raise StandInError(400, "Adapter bias cannot be used without bias_enabled.")
        if config.get("modules_to_save"):
            raise StandInError(400, "vLLM only supports modules_to_save being None.")
        modules = dict(self.base.named_modules())
        unexpected = []
        with safe_open(str(directory / "adapter_model.safetensors"), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                m = _WEIGHT.fullmatch(key)
                module = m.group(1) if m else key
                target = modules.get(module)
                if m is None or module.split(".")[-1] not in SUPPORTED_MODULES or target is None:
                    unexpected.append(module)
                    continue
                shape = tuple(f.get_slice(key).get_shape())
                want = (config["r"], target.in_features) if m.group(2) == "A" else (target.out_features, config["r"])
                if shape != want:
                    raise StandInError(400, f"{key} has shape {list(shape)}, expected {list(want)}")
        if unexpected:
            raise StandInError(
                400,
                f"While loading {path}, expected target modules in {list(SUPPORTED_MODULES)} but received "
                f"{sorted(set(unexpected))}. Please verify that the loaded LoRA module is correct",
            )
        if self.model is None:
            self.model = PeftModel.from_pretrained(self.base, str(directory), adapter_name=name).eval()
        else:
            self.model.load_adapter(str(directory), adapter_name=name)
        self.loaded[name] = path
        self.loads += 1

    def unload(self, name: str) -> None:
        if name not in self.loaded:
            raise StandInError(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        self.model.delete_adapter(name)
        del self.loaded[name]

    @torch.no_grad()
    def chat(self, body: dict[str, Any]) -> str:
        name = body.get("model")
        if name != self.served_name and name not in self.loaded:
            raise StandInError(404, f"The model `{name}` does not exist.", "NotFoundError")
        ids = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        kwargs = {"max_new_tokens": int(body.get("max_tokens", 16)), "do_sample": False}
        if name == self.served_name:
            if self.model is not None:
                with self.model.disable_adapter():
                    out = self.model.generate(input_ids=ids, **kwargs)
            else:
                out = self.base.generate(input_ids=ids, **kwargs)
        else:
            self.model.set_adapter(name)
            out = self.model.generate(input_ids=ids, **kwargs)
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()

    # ------------------------------------------------------------------ http
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/v1/models":
                    names = [standin.served_name, *standin.loaded]
                    self._send(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
                else:
                    self._send(404, {"error": {"message": "Not Found", "type": "NotFoundError", "code": 404}})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                try:
                    with standin._lock:
                        if self.path == "/v1/load_lora_adapter":
                            standin.load(body["lora_name"], body["lora_path"])
                            self._send(200, f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
                        elif self.path == "/v1/unload_lora_adapter":
                            standin.unload(body["lora_name"])
                            self._send(200, f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")
                        elif self.path == "/v1/chat/completions":
                            text = standin.chat(body)
                            message = {"role": "assistant", "content": text}
                            self._send(
                                200,
                                {
                                    "object": "chat.completion",
                                    "model": body.get("model"),
                                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                },
                            )
                        else:
                            raise StandInError(404, "Not Found", "NotFoundError")
                except StandInError as e:
                    self._send(e.status, {"error": {"message": e.message, "type": e.kind, "code": e.status}})

        return Handler

    def __enter__(self) -> VLLMStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"
