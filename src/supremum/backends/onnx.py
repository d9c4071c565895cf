"""ONNX Runtime as an inference backend that looks like a transformers model to our callers
(predict_logits, latency timing): `model(input_ids=..., attention_mask=...).logits`.
Artifacts with backend "onnxruntime" hold the graph in `model.onnx` next to config.json."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from supremum.backends import register
from supremum.backends.foreign import ForeignModel

ONNX_FILE = "model.onnx"


class OrtModel(ForeignModel):

    def __init__(self, path: str | Path, config=None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path, self.config = Path(path), config
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_):
        ids = input_ids.numpy().astype(np.int64)
        feed = {"input_ids": ids,
                "attention_mask": (np.ones_like(ids) if attention_mask is None
                                   else attention_mask.numpy().astype(np.int64))}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        feed = {k: v for k, v in feed.items() if k in self.input_names}
        (logits,) = self.session.run(["logits"], feed)
        return SimpleNamespace(logits=torch.from_numpy(logits) / self.temperature)


    def cost_info(self) -> dict:
        """Parameter count and bytes from the graph's initializers (weights as stored)."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        params = sum(int(np.prod(t.dims)) for t in graph.initializer)
        nbytes = sum(len(t.raw_data) for t in graph.initializer)
        return {"params": params, "weights_mb": nbytes / 2**20}

    def kernels(self) -> list[str]:
        """Operator types in the graph ORT runs (fused attention, integer matmuls ...)."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return sorted({n.op_type for n in graph.node})


@register("onnxruntime")
def load(art):
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(str(art.path))
    return OrtModel(art.path / ONNX_FILE, tf.AutoConfig.from_pretrained(str(art.path))), tok
