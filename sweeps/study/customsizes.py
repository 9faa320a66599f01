"""A study's ``sizes:`` list: registered size names, and custom shapes declared in place.

A custom size is a mapping with a name and ModelShape's own fields (the vocabulary comes from
the store, as for registered sizes)::

    sizes:
      - tiny-50k
      - {name: my-300k, d_model: 768, n_layers: 12, n_heads: 12, n_kv_heads: 12, d_mlp: 2688}

Optional fields: ``rope_theta``, ``norm_eps``, ``tie_embeddings``. A custom name may be a
registered one only with the registered shape (it is then that size, with its run ids). The
shapes travel in every training spec (``TrainSpec.custom_sizes``), whose run id they join.
"""

from __future__ import annotations

import re
from typing import Any

from pretrain.sizes import (
    OPTIONAL_SHAPE_FIELDS,
    SHAPE_FIELDS,
    SIZES,
    ModelShape,
    custom_shape,
    shape_fields,
)
from sweeps.study.schema import named_key
from sweeps.study.yamlpos import Section

SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def read_sizes(top: Section) -> tuple[tuple[str, ...], dict[str, ModelShape]]:
    """The names of the study's sizes in order, and the shapes of its custom ones (vocab 0)."""
    names, custom = [], {}
    for value, path in top.items("sizes"):
        if isinstance(value, dict):
            name, shape = _custom(Section(value, path, top.pos))
            if shape is not None:
                custom[name] = shape
        else:
            name = top.size(value, path)
        names.append(name)
    return top.unique("sizes", names), custom


def spec_shapes(custom: dict[str, ModelShape]) -> dict[str, dict[str, Any]] | None:
    """``TrainSpec.custom_sizes`` of a study: each custom size's fields (None without any)."""
    return {name: shape_fields(shape) for name, shape in custom.items()} or None


def describe(shape: ModelShape) -> str:
    return ", ".join(f"{k} {v}" for k, v in shape_fields(shape).items())


def _custom(sec: Section) -> tuple[str, ModelShape | None]:
    """One custom size: its name, and its shape (None when it is a registered size declared
    again with the registered shape)."""
    name = sec.raw("name")
    if name is None:
        raise sec.pos.error(sec.path + ("name",), "is required: a custom size's name")
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise sec.pos.error(sec.path + ("name",), f"{name!r} is not a safe size name (letters, digits, "
                            "'.', '_', '-'; not starting with '.')")
    values = {}
    for key in SHAPE_FIELDS:
        if not sec.has(key):
            raise sec.pos.error(sec.path + (key,), f"is required (a custom size declares {', '.join(SHAPE_FIELDS)})")
        value = sec.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise sec.pos.error(sec.path + (key,), f"expected an integer, got {value!r}")
        values[key] = sec.number(key, int)
    for key in OPTIONAL_SHAPE_FIELDS:
        if sec.has(key):
            values[key] = sec.raw(key)
    unknown = [k for k in sec.data if k not in ("name", *SHAPE_FIELDS, *OPTIONAL_SHAPE_FIELDS)]
    if unknown:
        raise sec.pos.error(sec.path + (unknown[0],), "unknown shape field; known: "
                            f"{', '.join((*SHAPE_FIELDS, *OPTIONAL_SHAPE_FIELDS))}")
    sec.done()
    try:
        shape = custom_shape(name, values)
    except ValueError as e:
        raise sec.pos.error(sec.path + named_key(str(e), values), str(e)) from None
    registered = SIZES.get(name)
    if registered is None:
        return name, shape
    if registered.with_vocab(0) != shape:
        raise sec.pos.error(sec.path + ("name",), f"{name!r} is a registered size of another shape "
                            f"({describe(registered)}): give the custom size another name")
    return name, None
