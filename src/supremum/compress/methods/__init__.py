"""Compression methods, one file each: the typed config (`@compressor(phase, summary, words=...)`)
and its `run(model, config, ctx) -> Compressed` (`@register(Config)`) side by side.

Every module here is imported when `supremum.compress` is (`registry.discover`), so a new method
is one new file (plus its test) and named nowhere else. It must import without torch: the help of
every command lists the methods and stays torch-free (tests/test_cli.py), so torch, transformers
and the method's own libraries are imported inside `run`. A method reuses the transform kinds of
`supremum.backends.transforms` (resize, sparse, lowrank, cast, int4, int8-dynamic, torchao) for
what it changes, so reloading, export checks and the "why no speed-up" explanations need nothing
new; a new kind is registered there first.
"""
