"""Documentation that is measured, not typed: model cards and datasheets (notebook 10).

A **model card** (Mitchell et al., FAT* 2019, "Model Cards for Model Reporting") says what a
model is for, how it was evaluated, and how well it works for whom; a **datasheet**
(Gebru et al., CACM 2021, "Datasheets for Datasets") says why a dataset exists, what is in
it, how it was made and what it should not be used for. Both go stale when they are written
by hand: here they are filled from the numbers a notebook has just measured, and a missing
section or a missing number is an error, not a blank.

:func:`model_card` and :func:`datasheet` return Markdown text (``IPython.display.Markdown``
renders it in a notebook).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np

MODEL_CARD_SECTIONS = (
    "model details",
    "intended use",
    "factors",
    "metrics",
    "evaluation data",
    "training data",
    "quantitative analyses",
    "ethical considerations",
    "caveats and recommendations",
)
DATASHEET_SECTIONS = (
    "motivation",
    "composition",
    "collection process",
    "preprocessing",
    "uses",
    "distribution",
    "maintenance",
)


def _format_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, Real):
        if not np.isfinite(value):
            raise ValueError(f"a measurement is not finite: {value!r}")
        return f"{float(value):.1%}" if 0 <= value <= 1 else f"{float(value):.3g}"
    return str(value)


def _section(name: str, body) -> str:
    """One Markdown section: text, a bulleted list, or a two-column table of measurements."""
    if body is None or (isinstance(body, (str, Sequence, Mapping)) and len(body) == 0):
        raise ValueError(f"section {name!r} is empty: measure it or say why it does not apply")
    title = f"### {name[0].upper()}{name[1:]}\n"
    if isinstance(body, str):
        return title + body.strip() + "\n"
    if isinstance(body, Mapping):
        if any(isinstance(v, Mapping) for v in body.values()):  # a table: rows x columns
            columns = list(dict.fromkeys(k for row in body.values() for k in row))
            lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            for row_name, row in body.items():
                cells = [_format_value(row[c]) if c in row else "n/a" for c in columns]
                lines.append(f"| {row_name} | " + " | ".join(cells) + " |")
            return title + "\n".join(lines) + "\n"
        lines = ["| | value |", "|---|---|"]
        lines += [f"| {k} | {_format_value(v)} |" for k, v in body.items()]
        return title + "\n".join(lines) + "\n"
    if isinstance(body, Sequence):
        return title + "\n".join(f"- {item}" for item in body) + "\n"
    raise TypeError(f"section {name!r} must be text, a list or a dict, got {type(body).__name__}")


def _document(kind: str, title: str, sections: Sequence[str], fields: Mapping) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title must be a non-empty string")
    missing = [s for s in sections if s not in fields]
    unknown = [k for k in fields if k not in sections]
    if missing or unknown:
        raise KeyError(
            f"a {kind} needs exactly the sections {list(sections)}; "
            f"missing {missing}, unknown {unknown}"
        )
    return f"## {kind.capitalize()}: {title}\n\n" + "\n".join(
        _section(s, fields[s]) for s in sections
    )


def model_card(title: str, **fields) -> str:
    """A model card in Markdown with Mitchell et al.'s nine sections (``MODEL_CARD_SECTIONS``;
    pass them as keywords with underscores, e.g. ``intended_use=...``). Each is text, a list
    (bullets) or a dict (a table: {metric: value} or {row: {column: value}}); numbers in
    [0, 1] print as percentages."""
    return _document("model card", title, MODEL_CARD_SECTIONS, _keys(fields))


def datasheet(title: str, **fields) -> str:
    """A datasheet in Markdown with Gebru et al.'s seven sections (``DATASHEET_SECTIONS``)."""
    return _document("datasheet", title, DATASHEET_SECTIONS, _keys(fields))


def _keys(fields: Mapping) -> dict:
    return {k.replace("_", " "): v for k, v in fields.items()}
