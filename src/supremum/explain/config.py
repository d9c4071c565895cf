"""The settings of `supremum explain` (no torch here: `--help` reads this schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from supremum.config import Seeds, csv_ints

Method = Literal["integrated-gradients", "input-x-gradient", "occlusion", "attention-rollout"]
#: ERASER's thresholds (DeYoung et al. 2020): the top k% of words removed / kept, AOPC averages over them
AOPC_PERCENTS = (1, 5, 10, 20, 50)


def _methods(v: Any) -> Any:
    """`ig,occlusion` to a list; an unknown name is named with the valid ones (the error then
    sits on the option, not on one list item)."""
    names = [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v
    if isinstance(names, list) and (bad := [n for n in names if n not in get_args(Method)]):
        raise ValueError(f"unknown method {', '.join(map(repr, bad))}; choose from {', '.join(get_args(Method))}")
    return names


class ExplainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    methods: Annotated[list[Method] | None, BeforeValidator(_methods)] = Field(
        None, min_length=1, description="comma-separated attribution methods: integrated-gradients, "
        "input-x-gradient, occlusion, attention-rollout (default: every one the artifact's runtime "
        "supports; gradients and attention need a PyTorch artifact, occlusion runs on every backend)")
    steps: int = Field(50, ge=1, description="Integrated Gradients: steps of the path integral "
                       "(Gauss-Legendre); more steps, smaller convergence delta")
    seeds: Annotated[Seeds, BeforeValidator(csv_ints)] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1, description="seeds of the random-attribution "
        "baseline of the faithfulness scores, comma-separated (mean and s.d. over them)")
    limit: int = Field(100, ge=1, description="--data: explain the first N examples of the split")
    split: str | None = Field(None, description="--data: split to explain [default: dev of the "
                              "training data; any other file is explained whole]")
    batch_size: int = Field(32, ge=1, description="sequences per forward pass (occlusion, faithfulness)")
    target: str | None = Field(None, description="causal LMs: the continuation to explain (default: the "
                               "model's greedy continuation of each --text)")
    max_new_tokens: int = Field(16, ge=1, description="causal LMs without --target: tokens generated")
