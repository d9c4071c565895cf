"""Tasks: what a model is trained to do, one vocabulary (see `supremum.tasks.base`).

Adding a task: a module here with a `Task` subclass that calls `register`, imported below.
"""

from supremum.tasks.base import Task, get_task, register, registered, resolve_task
from supremum.tasks.causal_lm import CausalLM
from supremum.tasks.classification import Classification

CLASSIFICATION: Task = get_task(Classification.name)
CAUSAL_LM: Task = get_task(CausalLM.name)

__all__ = ["CAUSAL_LM", "CLASSIFICATION", "CausalLM", "Classification", "Task", "get_task", "register",
           "registered", "resolve_task"]
