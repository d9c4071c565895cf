"""The face a non-PyTorch runtime (ONNX Runtime, llama.cpp) shows to callers written for
transformers models."""

from __future__ import annotations


class ForeignModel:
    """What callers ask of a module that is not PyTorch's: it never trains and holds no tensors."""

    training = False
    #: logits are divided by it (supremum.backends.apply_temperature)
    temperature = 1.0

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def parameters(self):
        return iter(())

    def buffers(self):
        return iter(())
